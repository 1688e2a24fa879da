"""Reading and summarising the replicas of a batched run (``config.num_seeds``).

A batched run writes one record per replica, tagged ``seed`` (the replica's
seed as a string), and one ``seed='all'`` record per step with the mean,
``{name}_std`` and ``{name}_ci95`` over the replicas (``stats``). A single run
writes untagged records; every function here treats it as one replica, so a
figure or summary is written once for both.
"""

from typing import Any, Iterable, Sequence

import numpy as np

from infomax_jax.runs.plots import mean_interval

Record = dict[str, Any]


def by_seed(records: Iterable[Record]) -> dict[str, list[Record]]:
  """``{seed: records}`` per replica, in step order; the ``'all'`` summary
  records are left out, and a single run's untagged records are ``{'': ...}``."""
  out: dict[str, list[Record]] = {}
  for record in records:
    seed = str(record.get('seed', ''))
    if seed != 'all':
      out.setdefault(seed, []).append(record)
  return out


def curves(records: Iterable[Record], name: str) -> tuple[np.ndarray, np.ndarray]:
  """``(steps (T,), values (R, T))`` of ``name`` over the R replicas, at the
  steps every replica recorded it."""
  groups = [[r for r in group if name in r] for group in by_seed(records).values()]
  groups = [g for g in groups if g]
  if not groups:
    return np.zeros(0), np.zeros((0, 0))
  steps = sorted(set.intersection(*({r['step'] for r in g} for g in groups)))
  values = [[{r['step']: r[name] for r in g}[s] for s in steps] for g in groups]
  return np.asarray(steps), np.asarray(values, np.float64)


def stats(records: Sequence[Record], confidence: float = 0.95) -> dict[str, float]:
  """Mean, ``{name}_std`` (ddof 1) and ``{name}_ci95`` (half-width of the
  Student-t ``confidence`` interval of the mean) of every numeric field the
  per-replica ``records`` share (``step`` excluded)."""
  def numeric(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)
  names = [k for k, v in records[0].items()
           if k != 'step' and numeric(v) and all(numeric(r.get(k)) for r in records)]
  out = {}
  for name in names:
    values = np.array([r[name] for r in records], np.float64)
    mean, half = mean_interval(values, confidence)
    out[name] = float(mean)
    out[f'{name}_std'] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out[f'{name}_ci95'] = float(half)
  return out


def interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, int]:
  """``(mean, half-width, n)`` of a Student-t interval of the mean of ``values``."""
  values = np.asarray(values, np.float64)
  mean, half = mean_interval(values, confidence)
  return float(mean), float(half), int(values.size)


def format_interval(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
  """'m ± h (n = N)' of ``scale * values``; a single value prints as 'm (n = 1)'."""
  mean, half, n = interval(np.asarray(values, np.float64) * scale)
  if n < 2:
    return f'{mean:.{digits}f} (n = 1)'
  return f'{mean:.{digits}f} ± {half:.{digits}f} (n = {n})'
