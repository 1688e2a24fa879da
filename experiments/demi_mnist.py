r"""DEMI as a training objective on MNIST halves, against plain InfoNCE.

x = top half, y = bottom half of MNIST digits; x' = part of the top half. Both
methods train MLP encoders g1 (x), g2 (y) through bilinear critics
f_t(x, y) = g1(x)^T W_t g2(y) (shared encoders, one W_t per chain-rule term):

  InfoNCE: I(x; y) >= infonce(f_1(x, y));
  DEMI:    I(x; y) = I(x'; y) + I(x; y | x')
                  ~ infonce(f_1(x', y)) + conditional_infonce(f_2(x, y)),

the conditional term with in-batch negatives resampled (or reweighted) with
weights exp f_1(x', y_j) (``infomax_jax.demi.chain_objective``). Each
evaluation reports held-out estimates and the linear-probe test accuracy of
g1(top) (``infomax_jax.evaluation``).

  python -m experiments.demi_mnist --config=experiments/configs/demi_mnist.py \
      --workdir=/tmp/demi_mnist

Writes to ``--workdir``: runs/<method>/ (metrics.jsonl, timing.json,
checkpoints), baselines.json (pixel probe), summary.md / summary.csv (final
estimates, accuracies and training seconds per method) and demi_mnist.png
(estimate and probe accuracy vs step for every method).
"""

import math
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from infomax_jax import demi
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import registry
from infomax_jax import runs
from infomax_jax import train
from infomax_jax import tschannen
from infomax_jax import twoview

# infomax_jax.demi.METHODS but the oracle: p(y | x') of MNIST is unknown.
METHODS = {m: n for m, n in demi.METHODS.items() if n != 'oracle'}
# The config fields that make two trainings of one method the same run, and
# those a rerun may change (how long, how often to evaluate and save).
RUN_FIELDS = ('seed', 'dataset', 'train_examples', 'noise_std', 'subview_rows',
              'encoder_features', 'optimizer', 'learning_rate', 'batch_size',
              'log_every')
SCHEDULE = ('num_steps', 'eval_every', 'checkpoint_every')
COLUMNS = {'method': 'method', 'steps': 'steps',
           'probe_accuracy': 'probe test accuracy',
           'pixel_baseline': 'pixel baseline', 'mi_test': 'estimate (test)',
           'mi_train': 'estimate (train)', 'terms_test': 'terms (test)',
           'ess_test': 'ESS', 'train_seconds': 'train s'}


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

  def __call__(self, x: jax.Array, y: jax.Array, term: int) -> jax.Array:
    return jnp.einsum('...i,ij,...j->...', self.encoder_x(x), self.kernels[term],
                      self.encoder_y(y))

  def encode_x(self, x: jax.Array) -> jax.Array:
    return self.encoder_x(x)


def make_task(config, method: str, train_views: twoview.Views,
              test_views: twoview.Views, *, baselines: dict) -> train.Task:
  """The chain of critics trained by ``method``, with the probe/MI evaluation."""
  height, width = train_views.images.shape[1] // 2, train_views.images.shape[2]
  masks = demi.method_masks(method, demi.row_masks(config.subview_rows, height, width))
  model = ChainBilinear(tuple(config.encoder_features), len(masks))
  sample = twoview.sample_views(config.batch_size, config.noise_std)
  estimate, loss = demi.chain_objective(
      lambda params, t, x, y: model.apply(params, x, y, t), masks, method, total='mi')
  mean = demi.batch_mean(estimate, sample)
  encode = twoview.make_encode(
      lambda params, x: model.apply(params, x, method=ChainBilinear.encode_x))
  tops = {'train': train_views.tops(), 'test': test_views.tops()}
  data = {'train': {'images': jnp.asarray(train_views.images)},
          'test': {'images': jnp.asarray(test_views.images)}}

  def init(key):
    x0 = jnp.zeros((1, masks.shape[1]))
    return model.init(key, x0, x0, 0), ()

  def evaluate(params, aux, step):
    del aux, step
    keys = {split: evaluation.eval_keys(config.seed, f'mi_{split}', config.eval_batches)
            for split in data}
    on_test = mean(params, data['test'], keys['test'])
    probe = evaluation.linear_probe(
        encode(params, tops['train']), train_views.labels,
        encode(params, tops['test']), test_views.labels, steps=config.probe_steps)
    return {'mi_train': mean(params, data['train'], keys['train'])['mi'],
            **{f'{k}_test': v for k, v in on_test.items()},
            'probe_accuracy': probe['accuracy'], **baselines}

  return train.Task(init=init, sample=sample, loss=loss, data=data['train'],
                    evaluate=evaluate)


def summary_row(method: str, final: dict, timing: dict, baselines: dict) -> dict:
  join = lambda sep, prefix, fmt: sep.join(
      format(final[k], fmt) for k in sorted(final)
      if k.startswith(prefix) and k.endswith('_test'))
  return {'method': method, 'steps': final['step'],
          'probe_accuracy': final['probe_accuracy'],
          'pixel_baseline': baselines['baseline_clean_pixels'],
          'mi_test': final['mi_test'], 'mi_train': final['mi_train'],
          'terms_test': join(' + ', 'term_', '.2f'),
          'ess_test': join(' / ', 'ess_', '.1f'),
          'train_seconds': timing.get('train', {}).get('seconds')}


def plot(config, workdir: str) -> str:
  """Estimate (test) and probe accuracy vs step, one line per method."""
  fig, axes = runs.plots.panels(2, height=3.8)
  for i, method in enumerate(config.methods):
    evals = runs.read_metrics(os.path.join(workdir, 'runs', method), 'eval')
    for ax, key in zip(axes, ('mi_test', 'probe_accuracy')):
      ax.plot(*runs.series(evals, key), 'o-', color=f'C{i}',
              label=demi.METHOD_LABELS[method])
  axes[0].axhline(math.log(config.batch_size), color='grey', ls='--', label='log K')
  tschannen.pixel_lines(axes[1], evals[-1])
  runs.plots.labels(axes[0], 'step', 'estimate on test batches (nats)',
                    legend=True, fontsize=8)
  runs.plots.labels(axes[1], 'step', 'linear probe test accuracy of g1(top)',
                    legend=True, fontsize=8)
  return runs.plots.save(
      fig, os.path.join(workdir, 'demi_mnist.png'),
      f"DEMI vs InfoNCE on MNIST halves (K = {config.batch_size}, x' = rows "
      f'{config.subview_rows[0]}-13)', dpi=110)


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains every method (resuming), then writes the summary and the figure."""
  for method in config.methods:
    registry.lookup(METHODS, method, 'method')
  train_views, test_views = tschannen.load_views(config)
  baselines = tschannen.baselines(config, train_views, test_views, workdir)
  rows = []
  for method in config.methods:
    print(f'=== {method}', flush=True)
    # The method's own fields only: train pins them, the method list may grow.
    pinned = {'method': method, **{f: config[f] for f in RUN_FIELDS}}
    run_dir = runs.run_dir(os.path.join(workdir, 'runs', method), pinned)
    task = make_task(config, method, train_views, test_views, baselines=baselines)
    train.train(runs.override(ml_collections.ConfigDict(pinned),
                              **{f: config[f] for f in SCHEDULE}), task, run_dir)
    rows.append(summary_row(method, runs.read_metrics(run_dir, 'eval')[-1],
                            runs.read_timing(run_dir), baselines))
  runs.write_csv(os.path.join(workdir, 'summary.csv'), list(COLUMNS), rows)
  table = runs.markdown_table(
      rows, list(COLUMNS), headers=list(COLUMNS.values()),
      formats={'method': demi.METHOD_LABELS.get, 'probe_accuracy': '.4f',
               'pixel_baseline': '.4f', 'mi_test': '.2f', 'mi_train': '.2f',
               'train_seconds': '.0f'})
  table += (f'\nK = {config.batch_size} (log K = {math.log(config.batch_size):.2f}); '
            f"x' = rows {config.subview_rows[0]}-13 of the top half. DEMI "
            'estimates use resampled negatives: an approximation, not a bound.\n')
  runs.write_text(os.path.join(workdir, 'summary.md'), table)
  plot(config, workdir)
  print(table, flush=True)
  return rows


if __name__ == '__main__':
  runs.main(run, __file__)
