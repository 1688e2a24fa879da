"""The experiment driver of Tschannen et al. (ICLR 2020): one place for what
the invertible, conditioning, adversarial, critics and target_mi experiments
share around ``infomax_jax.twoview`` — loading the views, the pixel
baselines (cached in the workdir, keyed by what they depend on), training one
run or a grid of runs, and the paper's figures.
"""

import hashlib
import json
import os
import re
import time
from typing import Any, Callable, Optional, Sequence

import ml_collections
import numpy as np

from infomax_jax import runs
from infomax_jax import train as train_lib
from infomax_jax import twoview

Config = ml_collections.ConfigDict
# The config fields the pixel baselines depend on (their cache key).
BASELINE_FIELDS = ('dataset', 'data_dir', 'noise_std', 'probe_steps', 'seed',
                   'train_examples')


def load_views(config: Config) -> tuple[twoview.Views, twoview.Views]:
  """(train, test) views; ``config.train_examples`` > 0 truncates train."""
  return (twoview.Views(config, 'train', config.get('train_examples') or 0),
          twoview.Views(config, 'test'))


def cache_dir() -> str:
  """The cache of results keyed by content: ``$INFOMAX_CACHE_DIR``, else
  ``~/.cache/infomax_jax``."""
  return os.environ.get('INFOMAX_CACHE_DIR') or os.path.join(
      os.path.expanduser('~'), '.cache', 'infomax_jax')


def _content_key(config: Config, train_views: twoview.Views,
                 test_views: twoview.Views) -> dict[str, Any]:
  """What the pixel baselines depend on: the settings of ``BASELINE_FIELDS``
  that shape them and a SHA-256 of the images and labels themselves."""
  digest = hashlib.sha256()
  for views in (train_views, test_views):
    for array in (views.images, views.labels):
      array = np.ascontiguousarray(array)
      digest.update(f'{array.dtype}{array.shape}'.encode())
      digest.update(array.tobytes())
  key = {f: config.get(f) for f in BASELINE_FIELDS if f not in ('dataset', 'data_dir',
                                                               'train_examples')}
  return {**json.loads(runs.to_json(key)), 'data_sha256': digest.hexdigest()}


def baselines(config: Config, train_views: twoview.Views,
              test_views: twoview.Views, workdir: str) -> dict[str, float]:
  """``twoview.pixel_baselines``, cached by content.

  The key is the data's SHA-256 and the settings they depend on
  (``_content_key``): a result is reused from ``workdir/baselines.json`` or
  from the shared cache (``cache_dir()/baselines/<sha>.json``, so a new
  workdir on the same data does not recompute it), else computed and written
  to both.
  """
  key = _content_key(config, train_views, test_views)
  name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
  shared = os.path.join(cache_dir(), 'baselines', f'{name}.json')
  local = os.path.join(workdir, 'baselines.json')
  for path in (local, shared):
    try:
      with open(path) as f:
        cached = json.load(f)
    except (OSError, ValueError):
      continue
    if cached.get('settings') == key:
      if path == shared:
        os.makedirs(workdir, exist_ok=True)
        runs.write_text(local, json.dumps(cached, indent=1))
      return cached['baselines']
  t0 = time.time()
  values = twoview.pixel_baselines(config, train_views, test_views)
  text = json.dumps({'settings': key, 'baselines': values}, indent=1)
  os.makedirs(workdir, exist_ok=True)
  runs.write_text(local, text)
  try:
    os.makedirs(os.path.dirname(shared), exist_ok=True)
    runs.write_text(shared, text)
  except OSError as e:   # a read-only home is no reason to fail the run
    print(f'note: could not write the baseline cache {shared}: {e}', flush=True)
  print(f'pixel baselines: {values} ({time.time() - t0:.1f}s)', flush=True)
  return values


TaskFn = Callable[..., train_lib.Task]


def run(config: Config, workdir: str, *, title: str, filename: str,
        make_task: TaskFn = twoview.make_task, plot: Optional[Callable] = None,
        extra_panels: Optional[list[tuple[Any, str]]] = None,
        **task_kwargs: Any) -> train_lib.TrainState:
  """One run: views, cached baselines, ``train.train`` (resumes), figure.

  Args:
    config: the experiment config.
    workdir: output folder.
    title, filename: of the figure.
    make_task: ``(config, train_views, test_views, baselines=..., **task_kwargs)
      -> Task`` (default: the two-view MI task).
    plot: ``workdir -> path`` drawing the figure (default: ``figure``).
    extra_panels: further panels of the default figure (see ``figure``).
    **task_kwargs: passed to ``make_task`` (e.g. ``extra_eval``).
  """
  if make_task is twoview.make_task:   # name errors before the data load
    twoview.make_model(config)
    twoview.mi_objective(config)
  train_views, test_views = load_views(config)
  base = baselines(config, train_views, test_views, workdir)
  task = make_task(config, train_views, test_views, baselines=base, **task_kwargs)
  state = train_lib.train(config, task, workdir)
  if plot is None:
    log_k = float(np.log(config.batch_size)) if config.bound == 'infonce' else None
    path = figure(workdir, title, filename, log_k=log_k, extra_panels=extra_panels)
  else:
    path = plot(workdir)
  seconds = runs.seconds(workdir)
  findings(workdir)
  print(f'wrote {path}; training wall time {seconds / 60:.1f} min', flush=True)
  return state


_LOG_COND = 'log_cond_p'


def findings(workdir: str) -> dict[str, Any]:
  """The run's findings over its seeds, as mean ± 95 % interval (Student t).

  Per seed, from its first and last evaluation: the rise of the probe accuracy
  (points), its margin over the noisy- and clean-pixel baselines (points) and
  the change of the test MI estimate (nats); when the run logs percentiles of
  log κ of the encoder's Jacobian (``log_cond_pXX``, Fig. 2), their change
  and final values. Written to ``summary.json`` and
  ``summary.md`` in ``workdir``, and printed.
  """
  groups = runs.replicas.by_seed(runs.read_metrics(workdir, 'eval'))
  firsts = [g[0] for g in groups.values()]
  lasts = [g[-1] for g in groups.values()]
  measures = {   # name -> (per-seed values, scale, unit)
      'accuracy rise': ([b['probe_accuracy'] - a['probe_accuracy']
                         for a, b in zip(firsts, lasts)], 100, 'points'),
      'final accuracy': ([b['probe_accuracy'] for b in lasts], 100, '%'),
      'final accuracy - noisy pixels': (
          [b['probe_accuracy'] - b['baseline_noisy_pixels'] for b in lasts
           if 'baseline_noisy_pixels' in b], 100, 'points'),
      'final accuracy - clean pixels': (
          [b['probe_accuracy'] - b['baseline_clean_pixels'] for b in lasts
           if 'baseline_clean_pixels' in b], 100, 'points'),
      'MI change (test)': ([b['mi_test'] - a['mi_test'] for a, b in zip(firsts, lasts)
                            if 'mi_test' in a and 'mi_test' in b], 1, 'nats'),
      'final MI (test)': ([b['mi_test'] for b in lasts if 'mi_test' in b], 1, 'nats'),
  }
  # Fig. 2: the change of each logged percentile (over the fixed inputs) of
  # log κ of g1's Jacobian, and its final value.
  logged = set.intersection(*(set(r) for r in firsts + lasts))
  percentiles = sorted(int(k[len(_LOG_COND):]) for k in logged
                       if re.fullmatch(_LOG_COND + r'\d+', k))
  for q in percentiles:
    key = f'{_LOG_COND}{q}'
    measures[f'log κ change (p{q})'] = (
        [b[key] - a[key] for a, b in zip(firsts, lasts)], 1, '')
  for q in percentiles:
    key = f'{_LOG_COND}{q}'
    measures[f'final log κ (p{q})'] = ([b[key] for b in lasts], 1, '')
  out = {'seeds': sorted(groups), 'steps': [firsts[0]['step'], lasts[0]['step']]}
  lines = [f'# Findings over {len(groups)} seed(s), step {out["steps"][0]} -> '
           f'{out["steps"][1]} (mean ± 95 % interval)', '']
  for name, (values, scale, unit) in measures.items():
    if not values:
      continue
    mean, half, n = runs.replicas.interval(np.asarray(values) * scale)
    out[name] = {'mean': mean, 'ci95': half, 'n': n, 'unit': unit,
                 'values': [float(v) * scale for v in values]}
    lines.append(f'- {name}: {runs.replicas.format_interval(values, scale)} {unit}'.rstrip())
  runs.write_text(os.path.join(workdir, 'summary.json'), json.dumps(out, indent=1))
  runs.write_text(os.path.join(workdir, 'summary.md'), '\n'.join(lines) + '\n')
  print('\n'.join(lines), flush=True)
  return out


def _final_by_seed(run_dir: str) -> dict[str, dict]:
  """The last evaluation of every seed of a (possibly batched) run."""
  return {seed: records[-1] for seed, records in
          runs.replicas.by_seed(runs.read_metrics(run_dir, 'eval')).items()}


def grid_findings(workdir: str, rows: dict[str, dict[str, str]], reference: str,
                  measures: Sequence[tuple[str, str, float]],
                  claim: dict[str, int], title: str) -> dict:
  """A paper's claim over the runs of a grid, as paired differences over seeds.

  For each row, the final value of every measure per line (mean ± 95 %
  interval over the seeds) and, paired by seed, every line minus the
  ``reference`` line. The claim holds for a line when each difference named
  in ``claim`` has the sign given there (+1 / -1) with its whole interval.
  Writes ``findings.md`` and ``findings.json`` in ``workdir``.

  Args:
    workdir: folder of the run folders.
    rows: row title -> {line label: run folder name} (as ``grid_figure``).
    reference: the line label the others are compared with.
    measures: (metric key, label, scale) per column, e.g.
      ('probe_accuracy', 'accuracy (%)', 100).
    claim: metric key -> expected sign of (line - reference).
    title: heading of findings.md.
  """
  fmt = runs.replicas.format_interval
  out, lines = {}, [f'# {title}', '']
  for row_title, row in rows.items():
    if reference not in row:
      raise ValueError(f'reference {reference!r} is not a line of row '
                       f'{row_title!r}: {sorted(row)}')
    finals = {label: _final_by_seed(os.path.join(workdir, name))
              for label, name in row.items()}
    seeds = sorted(set.intersection(*(set(f) for f in finals.values())))
    values = {label: {key: np.array([finals[label][s][key] for s in seeds])
                      for key, _, _ in measures} for label in row}
    step = finals[reference][seeds[0]]['step']
    lines += [f'## {row_title} ({len(seeds)} seed(s), step {step}; mean ± 95 % interval)',
              '', '| | ' + ' | '.join(label for _, label, _ in measures) + ' |',
              '|---' * (len(measures) + 1) + '|']
    for label, v in values.items():
      lines.append(f'| {label} | ' + ' | '.join(
          fmt(v[key], scale, 3 if scale == 1 else 2) for key, _, scale in measures) + ' |')
    lines.append('')
    out[row_title] = {'seeds': seeds, 'step': step,
                      'values': {l: {k: x.tolist() for k, x in v.items()}
                                 for l, v in values.items()}}
    for label in row:
      if label == reference:
        continue
      diffs, parts, holds = {}, [], True
      for key, name, scale in measures:
        d = (values[label][key] - values[reference][key]) * scale
        mean, half, _ = runs.replicas.interval(d)
        diffs[key] = [mean, half]
        parts.append(f'{name} {fmt(d, 1, 3 if scale == 1 else 2)}')
        if key in claim:
          holds &= bool(claim[key] * mean - half > 0)
      verdict = ('the claim holds at 95 %' if holds else
                 'the claim is not established at 95 %')
      lines.append(f'- {label} − {reference}: ' + ', '.join(parts) + f' — {verdict}')
      out[row_title][f'{label}-{reference}'] = {**diffs, 'holds': holds}
    lines.append('')
  text = '\n'.join(lines)
  runs.write_text(os.path.join(workdir, 'findings.md'), text)
  runs.write_text(os.path.join(workdir, 'findings.json'), json.dumps(out, indent=1))
  print(text, flush=True)
  return out


def run_grid(base: Config, workdir: str, configs: dict[str, Config], *,
             title: Callable[[Config], str],
             eval_bounds: Sequence[str] = ('nwj',)) -> dict:
  """Trains every ``configs[name]`` in ``workdir/name`` on data loaded once.

  Every evaluation reports the two-view metrics plus ``{b}_test`` for each
  bound of ``eval_bounds`` (on the same critic and test batches).

  Returns (and writes to ``workdir/summary.json``):
    ``{'baselines': ..., 'runs': {name: last eval record + wall_seconds}}``.
  """
  train_views, test_views = load_views(base)
  base_values = baselines(base, train_views, test_views, workdir)
  summary = {'baselines': base_values, 'runs': {}}
  for name, config in configs.items():
    run_dir = os.path.join(workdir, name)
    print(f'=== {name} ===', flush=True)
    task = twoview.make_task(config, train_views, test_views,
                             baselines=base_values, eval_bounds=eval_bounds)
    train_lib.train(config, task, run_dir)
    figure(run_dir, f'{name}: {title(config)}', f'{name}.png')
    last = _last_summary(run_dir)
    wall = runs.seconds(run_dir)
    summary['runs'][name] = {**last, 'wall_seconds': wall}
    print(f'{name}: {last} ({wall / 60:.1f} min)', flush=True)
  runs.write_text(os.path.join(workdir, 'summary.json'),
                  json.dumps(summary, indent=1))
  return summary


def _last_summary(run_dir: str) -> dict:
  """The last evaluation: the record of a single run, or the mean/std/ci95
  record over the seeds of a batched one."""
  evals = runs.read_metrics(run_dir, 'eval')
  summaries = [r for r in evals if r.get('seed') == 'all']
  return (summaries or evals)[-1]


def plot_curve(ax, evals: list[dict], key: str, style: str = 'o-', **kwargs) -> None:
  """``key`` vs step: a line for one run, mean and 95 % band over seeds."""
  steps, values = runs.replicas.curves(evals, key)
  if values.shape[0] > 1:
    runs.plots.band(ax, steps, values, style=style, **kwargs)
  elif values.size:
    ax.plot(steps, values[0], style, **kwargs)


def pixel_lines(ax, record: dict) -> None:
  """Horizontal lines at the record's pixel-baseline accuracies."""
  for key, color, style, label in (
      ('baseline_noisy_pixels', 'r', '--', 'pixels (noisy)'),
      ('baseline_clean_pixels', 'k', ':', 'pixels (clean)')):
    if key in record:
      ax.axhline(record[key], color=color, ls=style, label=label)


def figure(workdir: str, title: str, filename: str, log_k: Optional[float] = None,
           extra_panels: Optional[list[tuple[Any, str]]] = None) -> str:
  """Fig. 1a/b: I_EST (train, test) and probe accuracy vs step, from metrics.jsonl.

  ``extra_panels``: (key, y-label) per extra panel; a tuple of keys (ascending
  percentiles) draws shaded bands between symmetric pairs (Fig. 2 style).
  """
  evals = runs.read_metrics(workdir, 'eval')
  seeds = runs.replicas.by_seed(evals)
  first = next(iter(seeds.values()))
  fig, axes = runs.plots.panels(2 + len(extra_panels or []))
  for key, style, label in (('mi_train', 'o-', 'train'), ('mi_test', 's--', 'test')):
    plot_curve(axes[0], evals, key, style, label=label)
  if log_k is not None:
    axes[0].axhline(log_k, color='gray', ls=':', label='log K')
  runs.plots.labels(axes[0], 'iteration', '$I_{EST}$ (nats)', legend=True)
  plot_curve(axes[1], evals, 'probe_accuracy', label='g1(top) probe')
  pixel_lines(axes[1], first[-1])
  runs.plots.labels(axes[1], 'iteration', 'test accuracy', legend=True)
  for ax, (key, label) in zip(axes[2:], extra_panels or []):
    if isinstance(key, str):
      plot_curve(ax, evals, key)
    else:   # percentile curves: bands between them, of the first seed
      steps = runs.series(first, key[0])[0]
      runs.plots.percentile_bands(ax, steps, [runs.series(first, k)[1] for k in key])
    runs.plots.labels(ax, 'iteration', label)
  if len(seeds) > 1:
    title = f'{title} (mean and 95 % interval over {len(seeds)} seeds)'
  return runs.plots.save(fig, os.path.join(workdir, filename), title)


def grid_figure(workdir: str, rows: dict[str, dict[str, str]],
                panels: list[tuple[str, str]], filename: str, title: str) -> str:
  """One row per group, one panel per metric, one line per run (mean and
  95 % band over the seeds of a batched run).

  Args:
    workdir: folder holding the run folders; the PNG is written here.
    rows: row title -> {line label: run folder name}.
    panels: (metric key, axis label) per column.
    filename: PNG name.
    title: figure title.
  """
  fig, axes = runs.plots.panels(len(rows) * len(panels), rows=len(rows),
                                height=3.4)
  axes = np.asarray(axes).reshape(len(rows), len(panels))
  for row, (row_title, lines) in zip(axes, rows.items()):
    for ax, (key, label) in zip(row, panels):
      for line_label, name in lines.items():
        evals = runs.read_metrics(os.path.join(workdir, name), 'eval')
        plot_curve(ax, evals, key, 'o-', ms=3, label=line_label)
      if key == 'probe_accuracy':
        pixel_lines(ax, evals[-1])
      if min(ax.get_ylim()) < -100:   # I_NWJ of an InfoNCE-trained critic
        ax.set_yscale('symlog')
      ax.set_title(row_title)
      runs.plots.labels(ax, 'iteration', label, legend=True, fontsize=8)
  return runs.plots.save(fig, os.path.join(workdir, filename), title)
