"""Critic study (Tschannen et al. 2020, Fig. 3): probe accuracy vs test I_NWJ.

  python -m experiments.critics --config=experiments/configs/critics.py:quick \
      --workdir=runs/critics_quick

Trains the two-view model of ``infomax_jax.twoview`` once per (bound, critic)
of the config, sequentially, each in ``--workdir/<bound>_<critic>``
(metrics.jsonl, checkpoints/, its own PNG; a rerun resumes). Every evaluation
adds the test I_NWJ (``nwj_test``) to twoview's probe accuracy and MI
estimates. ``critics.png`` (one row per bound: probe accuracy and test I_NWJ
vs step, one line per critic) and ``summary.json`` go to --workdir.

``run_grid`` and ``plot_grid`` are shared with ``experiments.target_mi``.
"""

import json
import os
import time
from typing import Callable, Optional

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags

from infomax_jax import runs
from infomax_jax import data as data_lib
from infomax_jax import train as train_lib
from infomax_jax import twoview

Array = jax.Array


def override(config: ml_collections.ConfigDict, **fields) -> ml_collections.ConfigDict:
  """An unlocked copy of ``config`` with ``fields`` set (added if new)."""
  out = ml_collections.ConfigDict(config.to_dict())
  for name, value in fields.items():
    if isinstance(value, dict):
      value = ml_collections.ConfigDict(value)
    out[name] = value
  return out


def make_bound_eval(config: ml_collections.ConfigDict, test_views: twoview.Views,
                    bound: str = 'nwj') -> Callable[[dict, int], dict]:
  """``(params, step) -> {f'{bound}_test': ...}``: a bound on fixed test batches.

  The batches are drawn as in training (random test images, Gaussian noise of
  ``config.noise_std`` on both halves) from a fixed key, so every evaluation
  scores the same ``config.eval_batches`` batches of ``config.batch_size``.
  """
  model = twoview.make_model(config)
  estimator = twoview.SCORE_BOUNDS[bound]
  images = jnp.asarray(test_views.images)
  keys = jax.random.split(jax.random.PRNGKey(4321), config.eval_batches)

  @jax.jit
  def estimate(params):
    def one(key):
      idx_key, nx, ny = jax.random.split(key, 3)
      idx = data_lib.batch_indices(idx_key, images.shape[0], config.batch_size)
      top, bottom = data_lib.top_bottom_views(images[idx])
      scores = model.apply({'params': params},
                           data_lib.add_noise(nx, top, config.noise_std),
                           data_lib.add_noise(ny, bottom, config.noise_std))
      return estimator(scores)
    return jnp.mean(jax.lax.map(one, keys))

  return lambda params, step: {f'{bound}_test': estimate(params)}


def _truncate(views: twoview.Views, n: Optional[int]) -> twoview.Views:
  if n:
    if n > views.images.shape[0]:
      raise ValueError(f'train_examples must be <= {views.images.shape[0]}, got {n}')
    views.images, views.labels = views.images[:n], views.labels[:n]
  return views


def run_grid(base: ml_collections.ConfigDict, workdir: str,
             runs: dict[str, ml_collections.ConfigDict], *,
             title: Callable[[ml_collections.ConfigDict], str]) -> dict:
  """Trains every ``runs[name]`` config in ``workdir/name``; returns a summary.

  The data are loaded and the pixel baselines computed once (cached in
  ``workdir/baselines.json``). Every evaluation reports twoview's metrics plus
  the test I_NWJ. If ``base.train_examples`` is set (> 0), only the first that
  many train images are used, for training and for the probe (CPU variants).

  Returns:
    ``{'baselines': ..., 'runs': {name: last eval record + wall_seconds}}``.
  """
  os.makedirs(workdir, exist_ok=True)
  n = base.get('train_examples') or None
  train_views = _truncate(twoview.Views(base, 'train'), n)
  test_views = twoview.Views(base, 'test')
  base_path = os.path.join(workdir, 'baselines.json')
  if os.path.exists(base_path):
    with open(base_path) as f:
      baselines = json.load(f)
  else:
    t0 = time.time()
    baselines = twoview.pixel_baselines(base, train_views, test_views)
    with open(base_path, 'w') as f:
      json.dump(baselines, f)
    print(f'pixel baselines: {baselines} ({time.time() - t0:.1f}s)', flush=True)
  summary = {'baselines': baselines, 'runs': {}}
  for name, config in runs.items():
    run_dir = os.path.join(workdir, name)
    print(f'=== {name} ===', flush=True)
    task = twoview.make_task(config, train_views, test_views,
                             extra_eval=make_bound_eval(config, test_views),
                             baselines=baselines)
    t0 = time.time()
    train_lib.train(config, task, run_dir)
    wall = time.time() - t0
    twoview.plot(run_dir, f'{name}: {title(config)}', f'{name}.png')
    last = runs.read_metrics(run_dir, 'eval')[-1]
    summary['runs'][name] = {**last, 'wall_seconds': wall}
    print(f'{name}: {last} ({wall / 60:.1f} min)', flush=True)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary


def plot_grid(workdir: str, rows: dict[str, dict[str, str]],
              panels: list[tuple[str, str]], filename: str, title: str) -> str:
  """One row per group, one panel per metric, one line per run.

  Args:
    workdir: folder holding the run folders; the PNG is written here.
    rows: row title -> {line label: run folder name}.
    panels: (metric key, axis label) per column.
    filename: PNG name.
    title: figure title.
  """
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(len(rows), len(panels), squeeze=False,
                           figsize=(5 * len(panels), 3.4 * len(rows)))
  for row, (row_title, lines) in zip(axes, rows.items()):
    for ax, (key, label) in zip(row, panels):
      for line_label, name in lines.items():
        evals = runs.read_metrics(os.path.join(workdir, name), 'eval')
        ax.plot([r['step'] for r in evals], [r[key] for r in evals], 'o-',
                ms=3, label=line_label)
        if key == 'probe_accuracy' and 'baseline_clean_pixels' in evals[-1]:
          baseline = evals[-1]['baseline_clean_pixels']
      if key == 'probe_accuracy':
        ax.axhline(baseline, color='k', ls=':', label='pixels')
      if min(ax.get_ylim()) < -100:   # I_NWJ of an InfoNCE-trained critic
        ax.set_yscale('symlog')
      ax.set_xlabel('iteration'); ax.set_ylabel(label)
      ax.set_title(row_title); ax.legend(fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  path = os.path.join(workdir, filename)
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Every (bound, critic) of ``config``; writes critics.png and summary.json."""
  runs, rows = {}, {}
  for bound in config.bounds:
    rows[f'trained with {bound}'] = {}
    for critic, kwargs in config.critics.items():
      name = f'{bound}_{critic}'
      runs[name] = override(config, bound=bound, critic=critic,
                            critic_kwargs=kwargs.to_dict())
      rows[f'trained with {bound}'][critic] = name
  summary = run_grid(config, workdir, runs,
                     title=lambda c: f'MLP encoders, {c.critic} critic, {c.bound}')
  path = plot_grid(workdir, rows, [('probe_accuracy', 'test accuracy (linear probe)'),
                                   ('mi_test', 'test estimate of the trained bound'),
                                   ('nwj_test', 'test $I_{NWJ}$ (nats)')],
                   'critics.png', 'Critics (Tschannen et al. Fig. 3)')
  print(f'wrote {path}', flush=True)
  return summary


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  # Flags are defined here, not at import, because experiments.target_mi
  # imports run_grid / plot_grid from this module.
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/critics.py', 'Experiment config.',
      lock_config=True)
  flags.DEFINE_string('workdir', 'runs/critics', 'Output folder.')
  app.run(main)
