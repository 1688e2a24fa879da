"""One metrics schema for every run: JSON lines plus TensorBoard events.

Each record of ``workdir/metrics.jsonl`` is one flat JSON object::

  {"step": 1000, "split": "eval", "mi_test": 2.31, "probe_accuracy": 0.87}

``step`` (int) and ``split`` (str: 'train', 'eval', or an experiment's own
name such as 'test') come first; every other key is a metric name mapped to a
number (or a list of numbers). Optional string-valued tags (e.g. ``"run":
"cora/seed0"``) identify a record of a folder that holds several runs. The
same scalars go to TensorBoard as ``split/name`` (tensorboardX's writer: no
TensorFlow needed), so ``tensorboard --logdir=runs`` shows every experiment.
"""

import json
import math
import os
import time
from typing import Any, Iterable, Optional

import numpy as np

METRICS_FILE = 'metrics.jsonl'


def to_python(values: dict[str, Any]) -> dict[str, Any]:
  """Scalars to float, arrays to lists, strings kept (JSON-ready)."""
  out = {}
  for name, value in values.items():
    if isinstance(value, (str, bool)) or value is None:
      out[name] = value
    elif np.ndim(value) == 0:
      out[name] = float(value)
    else:
      out[name] = np.asarray(value).tolist()
  return out


def check_finite(record: dict[str, Any], where: str) -> None:
  """Raises FloatingPointError naming the first non-finite number of ``record``."""
  for name, value in record.items():
    if isinstance(value, (str, bool)) or value is None:
      continue
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
      bad = array.flat[np.flatnonzero(~np.isfinite(array))[0]]
      raise FloatingPointError(f'metric {name!r} became {bad} {where}; stopping')


class MetricWriter:
  """Appends records to ``workdir/metrics.jsonl`` and TensorBoard events.

  Args:
    workdir: the run's folder (created if needed).
    resume_step: ``None`` starts a new file; an int keeps only the records up
      to that step (a run resumed from its checkpoint at ``resume_step`` then
      rewrites what followed, exactly once) and tells TensorBoard to purge
      the events after it.
    enabled: ``False`` makes it a no-op (the non-primary processes of a
      multi-process run).
    tensorboard: also write TensorBoard event files into ``workdir``.
  """

  def __init__(self, workdir: str, resume_step: Optional[int] = None, *,
               enabled: bool = True, tensorboard: bool = True):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.enabled = enabled
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    if resume_step is None:
      open(self.path, 'w').close()
    elif os.path.exists(self.path):
      kept = [r for r in _read(self.path) if r['step'] <= resume_step]
      with open(self.path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in kept)
    if tensorboard:
      from tensorboardX import SummaryWriter  # lazy: optional at import
      purge = None if resume_step is None else resume_step + 1
      # A file per segment: two segments started in the same second would
      # otherwise share (and truncate) one file name.
      suffix = f'.{os.getpid()}.{time.time_ns()}'
      self._tb = SummaryWriter(workdir, purge_step=purge, flush_secs=10,
                               filename_suffix=suffix)

  def write(self, step: int, split: str, values: dict[str, Any],
            **tags: str) -> dict[str, Any]:
    """Writes one record; returns it (JSON-ready)."""
    if not isinstance(split, str) or not split:
      raise ValueError(f'split must be a non-empty str, got {split!r}')
    record = {'step': int(step), 'split': split, **tags, **to_python(values)}
    if not self.enabled:
      return record
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    if self._tb is not None:
      prefix = '/'.join([*tags.values(), split])
      for name, value in record.items():
        if name not in ('step', 'split') and name not in tags and isinstance(
            value, float):
          self._tb.add_scalar(f'{prefix}/{name}', value, int(step))
    return record

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """The records of a JSON-lines file (one object per line); [] if it does not exist."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _read(path: str) -> list[dict[str, Any]]:
  records = read_jsonl(path)
  for r in records:   # files written before the one schema said 'kind'
    if 'split' not in r and 'kind' in r:
      r['split'] = r.pop('kind')
  return records


def read_metrics(workdir: str, split: Optional[str] = None,
                 **tags: str) -> list[dict[str, Any]]:
  """The records of ``workdir/metrics.jsonl``, optionally of one split and tags."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'no {METRICS_FILE} in {workdir!r}: has the run started?')
  return [r for r in _read(path)
          if (split is None or r['split'] == split)
          and all(r.get(k) == v for k, v in tags.items())]


def series(records: Iterable[dict[str, Any]], name: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of metric ``name`` over ``records`` that have it."""
  pairs = [(r['step'], r[name]) for r in records if name in r]
  if not pairs:
    return np.zeros((0,), np.int64), np.zeros((0,))
  steps, values = zip(*pairs)
  return np.asarray(steps), np.asarray(values, dtype=np.float64)


class Progress:
  """The progress line of a loop: ``step i/n <metrics> | r steps/s, ETA m min``."""

  def __init__(self, total: int, start: int = 0, unit: str = 'steps'):
    self.total, self.start, self.unit = total, start, unit
    self.t0 = time.perf_counter()

  def rate(self, done: int) -> float:
    return (done - self.start) / max(time.perf_counter() - self.t0, 1e-9)

  def line(self, done: int, values: Optional[dict[str, Any]] = None,
           label: str = 'step') -> str:
    rate = self.rate(done)
    eta = (self.total - done) / rate if rate > 0 else math.inf
    parts = [f'{label} {done}/{self.total}'] + [
        f'{k}={v:.4g}' for k, v in (values or {}).items()
        if isinstance(v, (float, int)) and not isinstance(v, bool)]
    return f'{" ".join(parts)} | {rate:.3g} {self.unit}/s, ETA {eta / 60:.1f} min'


def last_eval(run_dir: str) -> dict[str, Any]:
  """The last evaluation record of ``run_dir`` that holds metrics ({} if none)."""
  if not os.path.exists(os.path.join(run_dir, METRICS_FILE)):
    return {}
  records = [r for r in read_metrics(run_dir, 'eval') if len(r) > 2]
  return records[-1] if records else {}


def finished(run_dir: str, num_steps: int) -> bool:
  """Whether ``run_dir`` holds the final evaluation of a ``num_steps`` run."""
  return last_eval(run_dir).get('step') == num_steps
