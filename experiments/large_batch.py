r"""Large-batch InfoNCE: the estimate vs batch size K at high MI (SPEC experiment 10).

  python -m experiments.large_batch --config=experiments/configs/large_batch.py \
      --workdir=runs/large_batch

Gaussian pairs x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps with the true MI
-(d/2) log(1 - rho^2) set to each of ``config.mi_levels``. For every level
three critics are evaluated by InfoNCE at every batch size K:

* ``trained``: a separable critic trained by ``infomax_jax.train`` at batch K
  (data-parallel over every device; above ``streaming_threshold`` the loss is
  ``contrastive.infonce`` streamed over column blocks and sharded by
  ``shard_map`` with negatives from the global batch), evaluated at the same K;
* ``fixed``: the critic trained at the largest trained K, evaluated at every K
  (the ceiling lift for one critic, also beyond the sizes trained);
* ``optimal``: the exact log density ratio, an inner product of augmented
  embeddings [rho/(1-rho^2) x, 1] and [y, -rho^2 |y|^2 / (2 (1-rho^2))]
  (InfoNCE ignores terms in x alone), i.e. the best any critic can do.

Writes to ``--workdir``:
  train/mi{I}_k{K}/   metrics.jsonl and checkpoints of each training run
                      (resumed when rerun), timing.json
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
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from infomax_jax import runs
from infomax_jax import bounds
from infomax_jax import contrastive
from infomax_jax import critics
from infomax_jax import parallel
from infomax_jax import train

Array = jax.Array

CURVES = ('trained', 'fixed', 'optimal')


# ------------------------------------------------------------------- data --

def mi_to_rho(mi: float, dim: int) -> float:
  """The correlation rho whose d-dimensional Gaussian pair has MI ``mi`` nats."""
  return math.sqrt(-math.expm1(-2.0 * mi / dim))


def sample_pairs(key: Array, rho: float, k: int, dim: int) -> tuple[Array, Array]:
  """x ~ N(0, I), y = rho x + sqrt(1 - rho^2) eps: (k, dim) each."""
  x, eps = jax.random.normal(key, (2, k, dim))
  return x, rho * x + math.sqrt(1.0 - rho**2) * eps


# ---------------------------------------------------------------- critics --

def _mlp(config) -> critics.MLP:
  return critics.MLP((*config.hidden, config.embed_dim))


def make_critic(config) -> critics.Separable:
  return critics.Separable(hidden=tuple(config.hidden), embed_dim=config.embed_dim)


def learned_embeddings(config, params, x: Array, y: Array) -> tuple[Array, Array]:
  """(phi_x(x), phi_y(y)) of a ``critics.Separable``: its scores are their inner products."""
  p = params['params']
  return (_mlp(config).apply({'params': p['phi_x']}, x),
          _mlp(config).apply({'params': p['phi_y']}, y))


def optimal_embeddings(x: Array, y: Array, rho: float) -> tuple[Array, Array]:
  """Embeddings whose inner product is log p(y|x)/p(y) up to terms in x alone."""
  c = 1.0 - rho**2
  ones = jnp.ones((x.shape[0], 1), x.dtype)
  ex = jnp.concatenate([(rho / c) * x, ones], axis=1)
  ey = jnp.concatenate([y, -(rho**2 / (2 * c)) * jnp.sum(y * y, axis=1,
                                                            keepdims=True)], axis=1)
  return ex, ey


def infonce_estimator(k: int, config, mesh) -> tuple[Callable, str]:
  """The InfoNCE of embeddings at batch k: dense, or streamed and sharded."""
  if k <= config.streaming_threshold:
    return (lambda ex, ey: bounds.infonce(
        jnp.dot(ex, ey.T, preferred_element_type=jnp.float32))), 'dense'
  fn = parallel.batch_shard_map(functools.partial(
      contrastive.infonce, block_size=config.block_size,
      axis_name=parallel.DATA_AXIS, collective=config.collective), mesh)
  return fn, f'streaming (block {config.block_size}, {config.collective})'


# ------------------------------------------------------------------ train --

def train_config(config, k: int) -> ml_collections.ConfigDict:
  """The ``infomax_jax.train`` fields for the run at batch size k."""
  return ml_collections.ConfigDict(dict(
      seed=config.seed, num_steps=config.num_steps, batch_size=k,
      learning_rate=config.learning_rate, optimizer=config.optimizer,
      log_every=config.log_every, eval_every=config.eval_every,
      checkpoint_every=config.checkpoint_every, keep_checkpoints=1))


def make_task(config, rho: float, k: int, mesh,
              clock: Optional[dict] = None) -> train.Task:
  """Maximise InfoNCE of the separable critic on fresh Gaussian batches of k.

  ``clock`` (optional) receives the wall time at each of the loop's
  evaluation points, {step: seconds}: the rate between two of them after the
  first excludes compilation.
  """
  critic = make_critic(config)
  estimate, _ = infonce_estimator(k, config, mesh)

  @jax.jit
  def init(key):
    dummy = jnp.zeros((1, config.dim))
    return critic.init(key, dummy, dummy), ()

  def sample(data, key):
    del data
    x, y = sample_pairs(key, rho, k, config.dim)
    return {'x': x, 'y': y}

  def loss(params, aux, batch, key):
    del key
    ex, ey = learned_embeddings(config, params, batch['x'], batch['y'])
    value = estimate(ex, ey)
    return -value, ({'infonce': value}, aux)

  def evaluate(params, aux, step):
    del params, aux
    if clock is not None:
      clock[int(step)] = time.perf_counter()
    return {}

  return train.Task(init=init, sample=sample, loss=loss, evaluate=evaluate)


def train_critic(config, level: float, rho: float, k: int, mesh,
                 workdir: str) -> tuple[dict, dict]:
  """Trains (or resumes) the critic at batch k; returns (params, timing)."""
  run_dir = os.path.join(workdir, 'train', f'mi{level:g}_k{k}')
  timing_path = os.path.join(run_dir, 'timing.json')
  clock = {}
  t0 = time.perf_counter()
  state = train.train(train_config(config, k),
                      make_task(config, rho, k, mesh, clock), run_dir, mesh=mesh,
                      verbose=True)
  seconds = time.perf_counter() - t0
  if os.path.exists(timing_path):                   # trained by an earlier run
    with open(timing_path) as f:
      timing = json.load(f)
  else:
    records = runs.read_metrics(run_dir, 'train')
    # Steady state: from the second evaluation point on (compiled by then).
    steps = sorted(s for s in clock if s > 0)
    rate = ((steps[-1] - steps[0]) / (clock[steps[-1]] - clock[steps[0]])
            if len(steps) >= 2 else None)
    timing = {'train_seconds': seconds,
              'steps_per_s': rate,
              'pairs_per_s': rate * k * k if rate else None,
              'final_train_infonce': records[-1]['infonce'] if records else None}
    if jax.process_index() == 0:
      with open(timing_path, 'w') as f:
        json.dump(timing, f)
  return state.params, timing


# --------------------------------------------------------------- evaluate --

def eval_batches(config, k: int) -> int:
  return int(np.clip(config.eval_pairs // k, config.min_eval_batches,
                     config.max_eval_batches))


def evaluate(embed: Callable, config, rho: float, k: int, mesh,
             key: Array) -> dict:
  """Mean and standard error of InfoNCE at batch k over fresh batches."""
  estimate, method = infonce_estimator(k, config, mesh)
  n = eval_batches(config, k)

  @jax.jit
  def run(key):
    def one(b):
      x, y = sample_pairs(jax.random.fold_in(key, b), rho, k, config.dim)
      batch = parallel.shard_batch({'x': x, 'y': y}, mesh)
      return estimate(*embed(batch['x'], batch['y']))
    return jax.lax.map(one, jnp.arange(n))

  t0 = time.perf_counter()
  with jax.default_matmul_precision(config.eval_matmul_precision):
    values = np.asarray(jax.device_get(run(key)), np.float64)
  seconds = time.perf_counter() - t0
  return {'estimate': float(values.mean()),
          'se': float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
          'batches': n, 'method': method, 'eval_seconds': seconds}


# ---------------------------------------------------------------- outputs --

def _read_results(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]


def summary_markdown(results: list[dict], config) -> str:
  lines = ['InfoNCE estimate (nats) vs batch size K; ± is the standard error over '
           'the evaluation batches. trained: critic trained at batch K; fixed: the '
           'critic trained at the largest trained K; optimal: the exact log '
           'density ratio.', '']
  for level in config.mi_levels:
    rows = {(r['curve'], r['k']): r for r in results if r['mi'] == level}
    fixed_k = max((r['critic_batch'] for r in rows.values()
                   if r['curve'] == 'fixed'), default=None)
    lines += [f'### I(X; Y) = {level:g} nats (d = {config.dim})', '',
              f'| K | log K | trained at K | fixed (trained at K = {fixed_k}) '
              '| optimal critic | InfoNCE computed | training score pairs/s |',
              '|---:|---:|---:|---:|---:|---|---:|']
    for k in config.batch_sizes:
      cells = []
      for curve in CURVES:
        r = rows.get((curve, k))
        if r is None:
          cells.append('–')
        else:
          se = f' ± {r["se"]:.3f}' if r.get('se') is not None else ''
          cells.append(f'{r["estimate"]:.3f}{se}')
      trained = rows.get(('trained', k))
      method = (trained or rows.get(('optimal', k)) or {}).get('method', '')
      pps = (f'{trained["train_pairs_per_s"]:.3g}'
             if trained and trained.get('train_pairs_per_s') else '')
      # (steady state: steps/s between the loop's last two evaluation points
      # times K^2 scored pairs per step)
      lines.append(f'| {k} | {math.log(k):.2f} | ' + ' | '.join(cells)
                   + f' | {method} | {pps} |')
    lines.append('')
  return '\n'.join(lines)


def write_csv(results: list[dict], path: str) -> None:
  fields = ('mi', 'curve', 'k', 'log_k', 'estimate', 'se', 'batches',
            'critic_batch', 'method', 'train_seconds', 'train_pairs_per_s',
            'eval_seconds')
  with open(path, 'w') as f:
    f.write(','.join(fields) + '\n')
    for r in results:
      f.write(','.join('' if r.get(k) is None else str(r.get(k)) for k in fields)
              + '\n')


def plot(results: list[dict], config, path: str) -> None:
  """Estimate vs log K, one panel per MI level, with the truth and log K."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  levels = list(config.mi_levels)
  fig, axes = plt.subplots(1, len(levels), figsize=(5.2 * len(levels), 4.2),
                           squeeze=False)
  log_ks = np.log(np.asarray(config.batch_sizes, np.float64))
  styles = {'trained': dict(color='C0', marker='o', ls='-', label='critic trained at K'),
            'fixed': dict(color='C1', marker='s', ls=':', label=None),
            'optimal': dict(color='C2', marker='^', ls='--',
                            label='optimal critic (exact log-ratio)')}
  for ax, level in zip(axes[0], levels):
    for curve in CURVES:
      rows = sorted((r for r in results if r['mi'] == level and r['curve'] == curve),
                    key=lambda r: r['k'])
      if not rows:
        continue
      style = dict(styles[curve])
      if curve == 'fixed':
        style['label'] = f'critic trained at K = {rows[0]["critic_batch"]}'
      ax.errorbar([math.log(r['k']) for r in rows], [r['estimate'] for r in rows],
                  yerr=[r.get('se') or 0.0 for r in rows], capsize=2, ms=4,
                  **style)
    ax.axhline(level, color='k', lw=1.2, label=f'true MI = {level:g} nats')
    ax.plot(log_ks, log_ks, color='gray', ls='--', lw=1.0, label='log K')
    ax.set_xticks(log_ks)
    ax.set_xticklabels([str(k) for k in config.batch_sizes], rotation=45)
    ax.set_xlabel('batch size K (log scale)')
    ax.set_ylabel('InfoNCE estimate (nats)')
    ax.set_ylim(0.0, max(level, log_ks[-1]) + 1.0)
    ax.set_title(f'I(X; Y) = {level:g} nats, d = {config.dim}')
    ax.legend(fontsize=7, loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


# ------------------------------------------------------------------- main --

def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Runs every (level, curve, K) not yet in ``workdir/results.jsonl``."""
  if config.collective not in contrastive.COLLECTIVES:
    raise ValueError(f'unknown collective {config.collective!r}; valid '
                     f'collectives are: {", ".join(contrastive.COLLECTIVES)}')
  mesh = parallel.make_mesh()
  for k in config.batch_sizes:
    parallel.check_batch_size(k, mesh)
  os.makedirs(workdir, exist_ok=True)
  results_path = os.path.join(workdir, 'results.jsonl')
  results = _read_results(results_path)
  done = {(r['mi'], r['curve'], r['k']) for r in results}
  primary = jax.process_index() == 0

  def record(row):
    results.append(row)
    done.add((row['mi'], row['curve'], row['k']))
    logging.info('I=%g %-8s K=%-6d estimate %.3f (log K %.2f) [%s]', row['mi'],
                 row['curve'], row['k'], row['estimate'], row['log_k'],
                 row['method'])
    if primary:
      with open(results_path, 'a') as f:
        f.write(json.dumps(row) + '\n')

  eval_root = jax.random.fold_in(jax.random.PRNGKey(config.seed), 10**6)
  train_ks = [k for k in config.batch_sizes if k <= config.max_train_batch]
  for li, level in enumerate(config.mi_levels):
    rho = mi_to_rho(level, config.dim)
    params = None
    for k in train_ks:
      params, timing = train_critic(config, level, rho, k, mesh, workdir)
      if (level, 'trained', k) not in done:
        embed = functools.partial(learned_embeddings, config, params)
        row = evaluate(embed, config, rho, k, mesh,
                       jax.random.fold_in(eval_root, 2 * li))
        record({'mi': level, 'curve': 'trained', 'k': k, 'log_k': math.log(k),
                'critic_batch': k, **row,
                'train_seconds': timing['train_seconds'],
                'train_pairs_per_s': timing['pairs_per_s'],
                'final_train_infonce': timing['final_train_infonce']})
    for k in config.batch_sizes:
      if params is not None and (level, 'fixed', k) not in done:
        if k == train_ks[-1]:         # the same critic, batches and numbers
          row = next(r for r in results if r['mi'] == level
                     and r['curve'] == 'trained' and r['k'] == k)
          row = {key: row[key] for key in ('estimate', 'se', 'batches', 'method',
                                           'eval_seconds')}
        else:
          embed = functools.partial(learned_embeddings, config, params)
          row = evaluate(embed, config, rho, k, mesh,
                         jax.random.fold_in(eval_root, 2 * li))
        record({'mi': level, 'curve': 'fixed', 'k': k, 'log_k': math.log(k),
                'critic_batch': train_ks[-1], **row})
      if (level, 'optimal', k) not in done:
        embed = functools.partial(optimal_embeddings, rho=rho)
        row = evaluate(embed, config, rho, k, mesh,
                       jax.random.fold_in(eval_root, 2 * li + 1))
        record({'mi': level, 'curve': 'optimal', 'k': k, 'log_k': math.log(k),
                'critic_batch': None, **row})

  table = summary_markdown(results, config)
  if primary:
    with open(os.path.join(workdir, 'summary.md'), 'w') as f:
      f.write(table + '\n')
    write_csv(results, os.path.join(workdir, 'summary.csv'))
    plot(results, config, os.path.join(workdir, 'large_batch.png'))
  print(table, flush=True)
  return results


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required.')
  parallel.initialize_distributed()     # no-op unless several processes
  logging.set_verbosity(logging.INFO)
  logging.info('JAX devices: %s', jax.devices())
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  # Flags are defined here, not at import, so that tests can import several
  # experiment modules into one process.
  _CONFIG = config_flags.DEFINE_config_file(
      'config', os.path.join(os.path.dirname(__file__), 'configs', 'large_batch.py'),
      'Experiment config (ml_collections); :cpu or :quick for CPU-sized runs.',
      lock_config=True)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
  app.run(main)
