r"""Large-batch InfoNCE: the estimate vs batch size K at high MI (SPEC experiment 10).

  python -m experiments.large_batch --config=experiments/configs/large_batch.py \
      --workdir=runs/large_batch

Gaussian pairs x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps with the true MI
-(d/2) log(1 - rho^2) set to each of ``config.mi_levels``
(``demi.GaussianViews.correlated``). For every level three critics are
evaluated by InfoNCE at every batch size K:

* ``trained``: a separable critic trained by ``infomax_jax.train`` at batch K
  (data-parallel over every device; above ``streaming_threshold`` the loss is
  ``streaming.infonce`` streamed over column blocks and sharded by
  ``shard_map`` with negatives from the global batch), evaluated at the same K;
* ``fixed``: the critic trained at the largest trained K, evaluated at every K
  (the ceiling lift for one critic, also beyond the sizes trained);
* ``optimal``: the exact log density ratio, an inner product of augmented
  embeddings [rho x, 1] and [y / (1-rho^2), -rho^2 |y|^2 / (2 (1-rho^2))]
  (``GaussianViews.optimal_embeddings``; InfoNCE ignores terms in x alone),
  i.e. the best any critic can do.

Writes to ``--workdir``:
  train/mi{I}_k{K}/   metrics.jsonl, timing.json and checkpoints of each
                      training run (resumed when rerun)
  results.jsonl       one line per (level, curve, K): estimate, standard error
                      over the evaluation batches, log K, method, throughput
  summary.md / summary.csv   the tables
  large_batch.png     estimate vs log K, one panel per level, with the true
                      MI and the log K line
Rerunning skips the evaluations already in results.jsonl.
"""

import functools
import json
import math
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import demi
from infomax_jax import evaluation
from infomax_jax import parallel
from infomax_jax import registry
from infomax_jax import runs
from infomax_jax import train
from infomax_jax.bounds import streaming

# The config fields of one training run (train pins them in its folder, so a
# rerun may add levels or batch sizes around it), then those a rerun may change.
RUN_FIELDS = ('seed', 'dim', 'hidden', 'embed_dim', 'optimizer', 'learning_rate',
              'log_every', 'streaming_threshold', 'block_size', 'collective')
SCHEDULE = ('num_steps', 'eval_every', 'checkpoint_every')
CURVES = ('trained', 'fixed', 'optimal')
FIELDS = ('mi', 'curve', 'k', 'log_k', 'estimate', 'se', 'batches',
          'critic_batch', 'method', 'train_seconds', 'train_pairs_per_s',
          'eval_seconds')
STYLES = {'trained': dict(color='C0', marker='o', ls='-'),
          'fixed': dict(color='C1', marker='s', ls=':'),
          'optimal': dict(color='C2', marker='^', ls='--')}


def learned_embeddings(config, params, x: jax.Array, y: jax.Array):
  """(phi_x(x), phi_y(y)) of a ``critics.Separable``: its scores are their inner products."""
  mlp, p = critics.MLP((*config.hidden, config.embed_dim)), params['params']
  return mlp.apply({'params': p['phi_x']}, x), mlp.apply({'params': p['phi_y']}, y)


def infonce_estimator(k: int, config, mesh) -> tuple[Callable, str]:
  """The InfoNCE of embeddings at batch k: dense, or streamed and sharded."""
  if k <= config.streaming_threshold:
    return (lambda ex, ey: bounds.infonce(
        jnp.dot(ex, ey.T, preferred_element_type=jnp.float32))), 'dense'
  fn = parallel.batch_shard_map(functools.partial(
      streaming.infonce, block_size=config.block_size,
      axis_name=parallel.DATA_AXIS, collective=config.collective), mesh)
  return fn, f'streaming (block {config.block_size}, {config.collective})'


def train_critic(config, level: float, model: demi.GaussianViews, k: int, mesh,
                 workdir: str) -> tuple[dict, dict]:
  """Trains (or resumes) the separable critic at batch k; returns (params, timing)."""
  critic = critics.Separable(hidden=tuple(config.hidden), embed_dim=config.embed_dim)
  estimate, _ = infonce_estimator(k, config, mesh)
  dummy = jnp.zeros((1, config.dim))

  def loss(params, aux, batch, key):
    del key
    value = estimate(*learned_embeddings(config, params, batch['x'], batch['y']))
    return -value, ({'infonce': value}, aux)

  task = train.Task(init=jax.jit(lambda key: (critic.init(key, dummy, dummy), ())),
                    sample=model.batch_sampler(k), loss=loss)
  run_dir = os.path.join(workdir, 'train', f'mi{level:g}_k{k}')
  run_config = ml_collections.ConfigDict(
      {'mi': level, 'batch_size': k, 'keep_checkpoints': 1,
       **{f: config[f] for f in RUN_FIELDS + SCHEDULE}})
  state = train.train(run_config, task, run_dir, mesh=mesh)
  # Steps/s without compilation; process 0 alone writes the run's files.
  timing = runs.read_timing(run_dir).get('train', {})
  rate = timing.get('steps_per_s')
  return state.params, {'train_seconds': timing.get('seconds'),
                        'train_pairs_per_s': rate * k * k if rate else None}


def evaluate(embed: Callable, config, model: demi.GaussianViews, k: int, mesh,
             key: jax.Array) -> dict:
  """Mean and standard error of InfoNCE at batch k over fresh batches."""
  estimate, method = infonce_estimator(k, config, mesh)
  n = int(np.clip(config.eval_pairs // k, config.min_eval_batches,
                  config.max_eval_batches))

  @jax.jit
  def values_of(key):
    def one(b):
      batch = parallel.shard_batch(
          model.batch_sampler(k)((), jax.random.fold_in(key, b)), mesh)
      return estimate(*embed(batch['x'], batch['y']))
    return jax.lax.map(one, jnp.arange(n))

  t0 = time.perf_counter()
  with jax.default_matmul_precision(config.eval_matmul_precision):
    values = np.asarray(jax.device_get(values_of(key)), np.float64)
  return {'estimate': float(values.mean()),
          'se': float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
          'batches': n, 'method': method,
          'eval_seconds': time.perf_counter() - t0}


def summary_markdown(results: list[dict], config) -> str:
  """One table per MI level: the three curves' estimates ± standard error vs K."""
  parts = ['InfoNCE estimate (nats) vs batch size K; ± is the standard error over '
           'the evaluation batches. trained: critic trained at batch K; fixed: the '
           'critic trained at the largest trained K; optimal: the exact log '
           'density ratio. Training score pairs/s: steps/s without compilation '
           'times K^2.', '']
  cell = lambda r: r and f'{r["estimate"]:.3f}' + (
      f' ± {r["se"]:.3f}' if r.get('se') is not None else '')
  for level in config.mi_levels:
    by = {(r['curve'], r['k']): r for r in results if r['mi'] == level}
    fixed_k = max((r['critic_batch'] for r in by.values() if r['curve'] == 'fixed'),
                  default=None)
    rows = [{'k': k, 'log_k': math.log(k), **{c: cell(by.get((c, k))) for c in CURVES},
             'method': (by.get(('trained', k)) or by.get(('optimal', k)) or {}).get('method'),
             'pairs_per_s': by.get(('trained', k), {}).get('train_pairs_per_s')}
            for k in config.batch_sizes]
    parts += [f'### I(X; Y) = {level:g} nats (d = {config.dim})', '',
              runs.markdown_table(
                  rows, ['k', 'log_k', *CURVES, 'method', 'pairs_per_s'],
                  headers=['K', 'log K', 'trained at K',
                           f'fixed (trained at K = {fixed_k})', 'optimal critic',
                           'InfoNCE computed', 'training score pairs/s'],
                  formats={'log_k': '.2f', 'pairs_per_s': '.3g'})]
  return '\n'.join(parts)


def plot(results: list[dict], config, path: str) -> str:
  """Estimate vs log K, one panel per MI level, with the truth and log K."""
  fig, axes = runs.plots.panels(len(config.mi_levels), width=5.2, height=4.2)
  log_ks = np.log(np.asarray(config.batch_sizes, np.float64))
  for ax, level in zip(axes, config.mi_levels):
    for curve in CURVES:
      rows = sorted((r for r in results if r['mi'] == level and r['curve'] == curve),
                    key=lambda r: r['k'])
      if not rows:
        continue
      label = {'trained': 'critic trained at K',
               'fixed': f'critic trained at K = {rows[0]["critic_batch"]}',
               'optimal': 'optimal critic (exact log-ratio)'}[curve]
      ax.errorbar([math.log(r['k']) for r in rows], [r['estimate'] for r in rows],
                  yerr=[r.get('se') or 0.0 for r in rows], capsize=2, ms=4,
                  label=label, **STYLES[curve])
    ax.axhline(level, color='k', lw=1.2, label=f'true MI = {level:g} nats')
    ax.plot(log_ks, log_ks, color='gray', ls='--', lw=1.0, label='log K')
    ax.set_xticks(log_ks)
    ax.set_xticklabels([str(k) for k in config.batch_sizes], rotation=45)
    ax.set_ylim(0.0, max(level, log_ks[-1]) + 1.0)
    ax.set_title(f'I(X; Y) = {level:g} nats, d = {config.dim}')
    runs.plots.labels(ax, 'batch size K (log scale)', 'InfoNCE estimate (nats)',
                      legend=True, fontsize=7, loc='lower right')
  return runs.plots.save(fig, path)


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Runs every (level, curve, K) not yet in ``workdir/results.jsonl``."""
  parallel.initialize_distributed()     # no-op unless several processes
  registry.lookup(dict.fromkeys(streaming.COLLECTIVES), config.collective,
                  'collective')
  mesh = parallel.make_mesh()
  for k in config.batch_sizes:
    parallel.check_batch_size(k, mesh)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, 'results.jsonl')
  results = runs.read_jsonl(path)
  primary = jax.process_index() == 0

  def record(level, curve, k, critic_batch, row):
    row = {'mi': level, 'curve': curve, 'k': k, 'log_k': math.log(k),
           'critic_batch': critic_batch, **row}
    results.append(row)
    print(f'I={level:g} {curve:<8} K={k:<6d} estimate {row["estimate"]:.3f} '
          f'(log K {row["log_k"]:.2f}) [{row["method"]}]', flush=True)
    if primary:
      with open(path, 'a') as f:
        f.write(json.dumps(row) + '\n')

  def cached(level, curve, k):
    return next((r for r in results if (r['mi'], r['curve'], r['k'])
                 == (level, curve, k)), None)

  train_ks = [k for k in config.batch_sizes if k <= config.max_train_batch]
  for level in config.mi_levels:
    model = demi.GaussianViews.correlated(config.dim, level)
    key = evaluation.eval_key(config.seed, f'mi{level:g}')   # same batches for all
    params = None
    for k in train_ks:
      params, timing = train_critic(config, level, model, k, mesh, workdir)
      if not cached(level, 'trained', k):
        embed = functools.partial(learned_embeddings, config, params)
        record(level, 'trained', k, k,
               {**evaluate(embed, config, model, k, mesh, key), **timing})
    for k in config.batch_sizes:
      if params is not None and not cached(level, 'fixed', k):
        embed = functools.partial(learned_embeddings, config, params)
        # At the largest trained K: the same critic and batches as 'trained'.
        row = cached(level, 'trained', k) if k == train_ks[-1] else None
        row = row or evaluate(embed, config, model, k, mesh, key)
        record(level, 'fixed', k, train_ks[-1],
               {f: row[f] for f in ('estimate', 'se', 'batches', 'method',
                                    'eval_seconds')})
      if not cached(level, 'optimal', k):
        record(level, 'optimal', k, None,
               evaluate(model.optimal_embeddings(), config, model, k, mesh, key))

  table = summary_markdown(results, config)
  if primary:
    runs.write_text(os.path.join(workdir, 'summary.md'), table + '\n')
    runs.write_csv(os.path.join(workdir, 'summary.csv'), FIELDS, results)
    plot(results, config, os.path.join(workdir, 'large_batch.png'))
  print(table, flush=True)
  return results


if __name__ == '__main__':
  runs.main(run, __file__)
