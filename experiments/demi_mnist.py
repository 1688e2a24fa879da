r"""DEMI as a training objective on MNIST halves, against plain InfoNCE.

x = top half, y = bottom half of MNIST digits; x' = part of the top half. Both
methods train MLP encoders g1 (x), g2 (y) through bilinear critics
f_t(x, y) = g1(x)^T W_t g2(y) (shared encoders, one W_t per chain-rule term):

  InfoNCE: I(x; y) >= infonce(f_1(x, y));
  DEMI:    I(x; y) = I(x'; y) + I(x; y | x')
                  ~ infonce(f_1(x', y)) + conditional_infonce(f_2(x, y)),

the conditional term with in-batch negatives resampled with weights
exp f_1(x', y_j) (``infomax_jax.demi.estimate_terms``). Training goes through
``infomax_jax.train.train``; each evaluation reports held-out estimates and the
linear-probe test accuracy of g1(top) (``infomax_jax.evaluation``).

  python -m experiments.demi_mnist --config=experiments/configs/demi_mnist.py \
      --workdir=/tmp/demi_mnist

Writes to ``--workdir``: runs/<method>/ (metrics.jsonl, checkpoints,
demi_mnist.png per run), baselines.json (pixel probe), summary.md / summary.csv
(final estimates and accuracies per method, wall times) and demi_mnist.png
(estimate and probe accuracy vs step for every method).
"""

import csv
import json
import math
import os
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from infomax_jax import runs
from infomax_jax import data as data_lib
from infomax_jax import demi
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import registry
from infomax_jax import train as train_lib
from infomax_jax import twoview

Array = jax.Array

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), 'configs', 'demi_mnist.py'),
    'DEMI-on-MNIST config; :quick for a smoke run.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')

# Method -> negatives of the conditional terms (None: InfoNCE on the whole x).
METHODS = {'infonce': None, 'demi_resample': 'resample', 'demi_reweight': 'reweight'}
LABELS = {'infonce': 'InfoNCE', 'demi_resample': 'DEMI (resampled)',
          'demi_reweight': 'DEMI (reweighted)'}


class ChainBilinear(nn.Module):
  """Shared encoders, one bilinear critic per term: g1(x)^T W_t g2(y).

  Broadcasts over leading axes like ``demi`` pair critics, so
  ``apply(params, x[:, None], y[None], t)`` is term t's (K, K) matrix.

  Attributes:
    features: MLP widths of g1 and g2 (the last is the code dimension).
    num_terms: number of critics W_t.
  """
  features: Sequence[int]
  num_terms: int

  def setup(self):
    self.encoder_x = encoders.MLP(tuple(self.features))
    self.encoder_y = encoders.MLP(tuple(self.features))
    d = self.features[-1]
    self.kernels = self.param(
        'kernels', nn.initializers.lecun_normal(batch_axis=(0,)),
        (self.num_terms, d, d))

  def __call__(self, x: Array, y: Array, term: int) -> Array:
    return jnp.einsum('...i,ij,...j->...', self.encoder_x(x), self.kernels[term],
                      self.encoder_y(y))

  def encode_x(self, x: Array) -> Array:
    return self.encoder_x(x)


def row_masks(subview_rows: Sequence[int], height: int = 14,
              width: int = 28) -> np.ndarray:
  """Nested masks of the flattened top half: rows r..height-1 for each r, then all.

  Args:
    subview_rows: strictly decreasing first rows of the subviews x^(1), ...
    height, width: shape of the (row-major flattened) view.

  Returns:
    (len(subview_rows) + 1, height * width) float32 0/1 masks.
  """
  rows = list(subview_rows)
  if any(not 0 < r < height for r in rows) or any(a <= b for a, b in zip(rows, rows[1:])):
    raise ValueError(f'subview_rows must be strictly decreasing rows in (0, '
                     f'{height}), got {tuple(rows)}')
  grid = np.repeat(np.arange(height), width)
  return np.stack([(grid >= r).astype(np.float32) for r in rows + [0]])


def make_task(config, method: str, train_views: twoview.Views,
              test_views: twoview.Views, baselines: dict) -> train_lib.Task:
  """The ``train.Task`` of one method."""
  negatives = registry.lookup(METHODS, method, 'method')
  masks = (np.ones((1, 392), np.float32) if negatives is None
           else row_masks(config.subview_rows))
  num_terms = masks.shape[0]
  model = ChainBilinear(tuple(config.encoder_features), num_terms)

  def sample(data, key):
    idx_key, nx, ny = jax.random.split(key, 3)
    idx = data_lib.batch_indices(idx_key, data['images'].shape[0], config.batch_size)
    top, bottom = data_lib.top_bottom_views(data['images'][idx])
    return {'x': data_lib.add_noise(nx, top, config.noise_std),
            'y': data_lib.add_noise(ny, bottom, config.noise_std)}

  def init(key):
    return model.init(key, jnp.zeros((1, 392)), jnp.zeros((1, 392)), 0), ()

  def terms(params, batch, key):
    fns = [lambda a, b, t=t: model.apply(params, a, b, t) for t in range(num_terms)]
    return demi.estimate_terms(fns, batch['x'], batch['y'], masks, key,
                               negatives=negatives or 'resample')

  def metrics_of(values, diagnostics):
    out = {'mi': jnp.sum(values)}
    out.update({f'term_{t + 1}': values[t] for t in range(num_terms)})
    out.update({f'ess_{t + 2}': diagnostics['ess'][t] for t in range(num_terms - 1)})
    return out

  def loss(params, aux, batch, key):
    values, diagnostics = terms(params, batch, key)
    return -jnp.sum(values), (metrics_of(values, diagnostics), aux)

  @jax.jit
  def estimate(params, images):
    def one(key):
      data_key, neg_key = jax.random.split(key)
      return metrics_of(*terms(params, sample({'images': images}, data_key), neg_key))
    keys = jax.random.split(jax.random.PRNGKey(1234), config.eval_batches)
    return jax.tree.map(jnp.mean, jax.lax.map(one, keys))

  encode = jax.jit(lambda params, x: jax.lax.map(
      lambda v: model.apply(params, v, method=ChainBilinear.encode_x),
      x, batch_size=1000))
  train_tops, test_tops = train_views.tops(), test_views.tops()
  train_images = jnp.asarray(train_views.images)
  test_images = jnp.asarray(test_views.images)

  def evaluate(params, aux, step):
    del aux, step
    train_est = jax.device_get(estimate(params, train_images))
    test_est = jax.device_get(estimate(params, test_images))
    record = {'mi_train': float(train_est['mi']), 'mi_test': float(test_est['mi'])}
    record.update({f'{k}_test': float(v) for k, v in test_est.items() if k != 'mi'})
    probe = evaluation.linear_probe(encode(params, train_tops), train_views.labels,
                                encode(params, test_tops), test_views.labels,
                                steps=config.probe_steps)
    record['probe_accuracy'] = float(probe['accuracy'])
    record.update(baselines)
    return record

  return train_lib.Task(init=init, sample=sample, loss=loss,
                        data={'images': train_images}, evaluate=evaluate)


def _plot(config, workdir: str, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  baselines = {}
  for i, method in enumerate(config.methods):
    evals = runs.read_metrics(os.path.join(workdir, 'runs', method), 'eval')
    steps = [r['step'] for r in evals]
    axes[0].plot(steps, [r['mi_test'] for r in evals], 'o-', color=f'C{i}',
                 label=f'{LABELS[method]} (test)')
    axes[1].plot(steps, [r['probe_accuracy'] for r in evals], 'o-', color=f'C{i}',
                 label=LABELS[method])
    baselines = evals[-1]
  axes[0].axhline(math.log(config.batch_size), color='grey', ls='--', label='log K')
  axes[0].set_xlabel('step')
  axes[0].set_ylabel('estimate (nats)')
  axes[0].legend(fontsize=8)
  if 'baseline_clean_pixels' in baselines:
    axes[1].axhline(baselines['baseline_clean_pixels'], color='k', ls=':',
                    label='pixels (top half)')
  axes[1].set_xlabel('step')
  axes[1].set_ylabel('linear probe test accuracy of g1(top)')
  axes[1].legend(fontsize=8)
  fig.suptitle(f'DEMI vs InfoNCE on MNIST halves (K = {config.batch_size}, '
               f'x\' = rows {config.subview_rows[0]}-13)')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains every method (resuming), then writes the summary and the figure."""
  for method in config.methods:
    registry.lookup(METHODS, method, 'method')
  os.makedirs(os.path.join(workdir, 'runs'), exist_ok=True)
  train_views = twoview.Views(config, 'train')
  test_views = twoview.Views(config, 'test')
  base_path = os.path.join(workdir, 'baselines.json')
  if os.path.exists(base_path):
    with open(base_path) as f:
      baselines = json.load(f)
  else:
    baselines = twoview.pixel_baselines(config, train_views, test_views)
    with open(base_path, 'w') as f:
      json.dump(baselines, f)
  print(f'pixel baselines: {baselines}', flush=True)

  walls_path = os.path.join(workdir, 'wall_times.json')
  walls = {}
  if os.path.exists(walls_path):
    with open(walls_path) as f:
      walls = json.load(f)
  rows = []
  for method in config.methods:
    run_dir = os.path.join(workdir, 'runs', method)
    print(f'=== {method}', flush=True)
    task = make_task(config, method, train_views, test_views, baselines)
    t0 = time.time()
    train_lib.train(config, task, run_dir)
    walls.setdefault(method, time.time() - t0)
    with open(walls_path, 'w') as f:
      json.dump(walls, f)
    final = runs.read_metrics(run_dir, 'eval')[-1]
    rows.append({'method': method, 'steps': final['step'],
                 'probe_accuracy': final['probe_accuracy'],
                 'mi_test': final['mi_test'], 'mi_train': final['mi_train'],
                 'terms_test': ' + '.join(
                     f'{final[k]:.2f}' for k in sorted(final)
                     if k.startswith('term_') and k.endswith('_test')),
                 'ess_test': ' / '.join(
                     f'{final[k]:.1f}' for k in sorted(final)
                     if k.startswith('ess_') and k.endswith('_test')) or '-',
                 'pixel_baseline': baselines['baseline_clean_pixels'],
                 'train_seconds': walls[method]})
  with open(os.path.join(workdir, 'summary.csv'), 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  lines = ['| method | steps | probe test accuracy | pixel baseline | estimate '
           '(test) | estimate (train) | terms (test) | ESS | train s |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    lines.append(
        f'| {LABELS[r["method"]]} | {r["steps"]} | {r["probe_accuracy"]:.4f} | '
        f'{r["pixel_baseline"]:.4f} | {r["mi_test"]:.2f} | {r["mi_train"]:.2f} | '
        f'{r["terms_test"]} | {r["ess_test"]} | {r["train_seconds"]:.0f} |')
  lines.append('')
  lines.append(f'K = {config.batch_size} (log K = {math.log(config.batch_size):.2f}); '
               f'x\' = rows {config.subview_rows[0]}-13 of the top half. DEMI '
               'estimates use resampled negatives: an approximation, not a bound.')
  table = '\n'.join(lines) + '\n'
  with open(os.path.join(workdir, 'summary.md'), 'w') as f:
    f.write(table)
  _plot(config, workdir, os.path.join(workdir, 'demi_mnist.png'))
  print(table, flush=True)
  return rows


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required')
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
