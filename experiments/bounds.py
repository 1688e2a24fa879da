r"""Gaussian MI benchmark of Poole et al. (2019, Fig. 2).

x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps, I(X; Y) = -(d/2) log(1 - rho^2)
stepped through ``config.levels``; one critic is trained through the whole
staircase per (critic, estimator). Every (critic, estimator) pair is one run
of ``infomax_jax.train.train``: sampling (rho from the step's level), critic,
bound and Adam update are one jitted step, each level is one chunk (a
``lax.scan`` over its steps) and ends with a checkpoint. The batch of K pairs
is sharded over every device (data parallel, no code change; K must be a
multiple of the device count); the K x K scores, and so every bound, still
use the whole batch. The per-step estimates and objectives are kept in the
run's ``aux`` (checkpointed with it), so a resumed run keeps its curve. The
data stream depends on the seed and the step only: every pair sees the same
data. A non-finite estimate stops the run with an error naming the step
(``train.train``'s check).

  python -m experiments.bounds --config=experiments/configs/bounds.py \
      --workdir=/tmp/bounds

Writes to ``--workdir``:
  runs/<critic>_<estimator>/  the ``train.train`` folder of each pair
                (checkpoints after every level, metrics.jsonl per level): an
                interrupted pair resumes from its last finished level.
  metrics.csv   one row per step: critic, estimator, step, true_mi, estimate,
                objective (the value whose gradient trained the critic).
  timings.csv   compile and run seconds per (critic, estimator).
  summary.csv / summary.md   mean, std and batch-means standard error of the
                estimate over the last ``summary_window`` steps of each level.
  bounds.png    Fig. 2 of Poole et al.: EMA-smoothed estimate vs step, one
                panel per estimator, one row per critic, with the true MI
                staircase and the log K line.
(critic, estimator) pairs already complete in metrics.csv are skipped, so an
interrupted run continues where it stopped.
"""

import collections
import csv
import dataclasses
import math
import os
import time
from typing import Callable, NamedTuple, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from experiments import csvio
from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import registry
from infomax_jax import train as train_lib

Array = jax.Array

METRIC_FIELDS = ('critic', 'estimator', 'step', 'true_mi', 'estimate',
                 'objective')
SUMMARY_FIELDS = ('critic', 'estimator', 'true_mi', 'mean', 'std', 'se',
                  'bias_over_se', 'n')
# Config fields that define a training run (a run folder trained with other
# values is not resumed).
RUN_SETTINGS = ('levels', 'steps_per_level', 'batch_size', 'dim', 'hidden',
                'embed_dim', 'baseline_hidden', 'learning_rate',
                'mine_momentum', 'seed')


# -------------------------------------------------------------- estimators --

class Estimate(NamedTuple):
  """One estimator's output on a batch of scores."""
  objective: Array            # maximised by the critic (its gradient is used)
  estimate: Array             # reported MI estimate in nats
  mine_state: bounds.MineState


@dataclasses.dataclass(frozen=True)
class Estimator:
  """An estimator of the benchmark.

  Attributes:
    fn: (scores, log_baseline, mine_state, mine_momentum) -> Estimate.
    learned_baseline: whether ``fn`` takes a learned log-baseline a(y) (K,).
  """
  fn: Callable[..., Estimate]
  learned_baseline: bool = False


def _value(bound: Callable[[Array], Array]) -> Callable[..., Estimate]:
  """An estimator that trains on and reports the same bound."""
  def fn(scores, log_baseline, mine_state, momentum):
    del momentum
    v = bound(scores) if log_baseline is None else bound(scores, log_baseline)
    return Estimate(v, v, mine_state)
  return fn


def _jsd(scores, log_baseline, mine_state, momentum):
  # DIM trains on the JS proxy, which is no MI estimate; its optimal critic is
  # log p/q, and NWJ is tight at 1 + log p/q, so report NWJ of the scores + 1
  # (the vbmi/SMILE reference code reports NWJ of the raw scores: I - 1/e at
  # the optimum).
  del log_baseline, momentum
  return Estimate(bounds.jsd(scores), bounds.nwj(scores + 1.0), mine_state)


def _mine(scores, log_baseline, mine_state, momentum):
  del log_baseline
  v, new_state = bounds.mine(scores, mine_state, momentum)
  return Estimate(v, v, new_state)


def _smile(clip: Optional[float]) -> Callable[..., Estimate]:
  return _value(lambda s: bounds.smile(s, clip))


def _interpolated(alpha: float) -> Estimator:
  return Estimator(
      _value(lambda s, a: bounds.interpolated(s, a, alpha)),
      learned_baseline=True)


ESTIMATORS: dict[str, Estimator] = {
    'infonce': Estimator(_value(bounds.infonce)),
    'nwj': Estimator(_value(bounds.nwj)),
    'dv': Estimator(_value(bounds.dv)),
    'jsd': Estimator(_jsd),
    'tuba': Estimator(_value(bounds.tuba), learned_baseline=True),
    'interpolated_0.01': _interpolated(0.01),
    'interpolated_0.5': _interpolated(0.5),
    'interpolated_0.99': _interpolated(0.99),
    'smile_1': Estimator(_smile(1.0)),
    'smile_5': Estimator(_smile(5.0)),
    'smile_inf': Estimator(_smile(None)),
    'mine': Estimator(_mine),
}


# ------------------------------------------------------------------- data --

def mi_to_rho(mi: float, dim: int) -> float:
  """The correlation rho at which the d-dim Gaussian pair has MI ``mi`` nats."""
  return math.sqrt(1.0 - math.exp(-2.0 * mi / dim))


def sample_correlated_gaussian(key: Array, rho: Array, batch_size: int,
                               dim: int) -> tuple[Array, Array]:
  """x ~ N(0, I), y = rho x + sqrt(1 - rho^2) eps: (batch_size, dim) each."""
  x, eps = jax.random.normal(key, (2, batch_size, dim))
  return x, rho * x + jnp.sqrt(1.0 - rho**2) * eps


# ------------------------------------------------------------------ train --

def make_critic(name: str, config: ml_collections.ConfigDict):
  kwargs = {'hidden': tuple(config.hidden)}
  if name == 'separable':
    kwargs['embed_dim'] = config.embed_dim
  return critics.make_critic(name, **kwargs)


def train_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``train.train`` config of one pair: one chunk and checkpoint per level."""
  n = config.steps_per_level
  return ml_collections.ConfigDict(dict(
      seed=config.seed, num_steps=len(config.levels) * n,
      batch_size=config.batch_size, learning_rate=config.learning_rate,
      optimizer='adam', log_every=n, eval_every=len(config.levels) * n,
      checkpoint_every=n, keep_checkpoints=1))


def make_task(critic_name: str, estimator_name: str,
              config: ml_collections.ConfigDict) -> train_lib.Task:
  """The ``train.Task`` of one (critic, estimator) pair.

  ``aux`` carries MINE's moving average and the (T,) per-step estimate and
  objective (T = levels x steps_per_level), written at each step's index.
  """
  estimator = registry.lookup(ESTIMATORS, estimator_name, 'estimator')
  critic = make_critic(critic_name, config)
  baseline = critics.MLP((*config.baseline_hidden, 1))
  k, d, n = config.batch_size, config.dim, config.steps_per_level
  total = len(config.levels) * n
  rhos = jnp.asarray([mi_to_rho(mi, d) for mi in config.levels], jnp.float32)

  @jax.jit
  def init(key):
    critic_key, baseline_key = jax.random.split(key)
    dummy = jnp.zeros((k, d))
    params = {'critic': critic.init(critic_key, dummy, dummy)}
    if estimator.learned_baseline:
      params['baseline'] = baseline.init(baseline_key, dummy)
    aux = {'mine': bounds.mine_init(),
           'estimate': jnp.zeros((total,), jnp.float32),
           'objective': jnp.zeros((total,), jnp.float32)}
    return params, aux

  def sample(rhos, key, step):
    # The step's level sets rho; the key depends on the seed and step only.
    x, y = sample_correlated_gaussian(key, rhos[step // n], k, d)
    return {'x': x, 'y': y}

  def update(state, batch, key, tx):
    del key

    def loss_fn(params):
      scores = critic.apply(params['critic'], batch['x'], batch['y'])
      log_baseline = None
      if estimator.learned_baseline:
        log_baseline = baseline.apply(params['baseline'], batch['y'])[:, 0]
      out = estimator.fn(scores, log_baseline, state.aux['mine'],
                         config.mine_momentum)
      return -out.objective, out

    grads, out = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    aux = {'mine': out.mine_state,
           'estimate': state.aux['estimate'].at[state.step].set(out.estimate),
           'objective': state.aux['objective'].at[state.step].set(
               out.objective)}
    return (state.replace(params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state, aux=aux),
            {'estimate': out.estimate, 'objective': out.objective})

  return train_lib.Task(init=init, sample=sample, data=rhos, update=update,
                        sample_takes_step=True)


def train_combo(critic_name: str, estimator_name: str,
                config: ml_collections.ConfigDict, workdir: str, mesh=None):
  """Trains one critic with one estimator through the MI staircase.

  One ``train.train`` run in ``workdir`` (resumed if it holds a checkpoint of
  the same run), on ``mesh`` (default: every device).

  Args:
    critic_name: a name of ``infomax_jax.critics.CRITICS``.
    estimator_name: a name of ``ESTIMATORS``.
    config: the benchmark config.
    workdir: the run's folder (``train.train``'s workdir).
    mesh: the ``'data'`` mesh (default ``parallel.make_mesh()``).

  Returns:
    (estimates, objectives, timing): two float arrays of shape
    (len(levels) * steps_per_level,) and a dict of seconds (compile_s: time
    spent compiling; run_s: the rest of the ``train.train`` call).
  """
  task = make_task(critic_name, estimator_name, config)
  c0, t0 = train_lib.compile_seconds(), time.perf_counter()
  state = train_lib.train(train_config(config), task, workdir, mesh=mesh)
  aux = jax.device_get(state.aux)
  compile_s = train_lib.compile_seconds() - c0
  timing = {'compile_s': compile_s,
            'run_s': time.perf_counter() - t0 - compile_s}
  est, obj = np.asarray(aux['estimate']), np.asarray(aux['objective'])
  n, w = config.steps_per_level, config.summary_window
  for level, mi in enumerate(config.levels):
    logging.info('%-9s %-18s level %2g nats: mean of last %d = %7.3f',
                 critic_name, estimator_name, mi, w,
                 np.mean(est[(level + 1) * n - w:(level + 1) * n]))
  return est, obj, timing


# ---------------------------------------------------------------- outputs --

def _read_csv(path: str) -> list[dict[str, str]]:
  if not os.path.exists(path):
    return []
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def _write_csv(path: str, fields: Sequence[str], rows, mode: str = 'w') -> None:
  new = mode == 'w' or not os.path.exists(path) or os.path.getsize(path) == 0
  with open(path, mode, newline='') as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    if new:
      writer.writeheader()
    writer.writerows(rows)


def true_mi_per_step(config: ml_collections.ConfigDict) -> np.ndarray:
  return np.repeat(np.asarray(config.levels, np.float64),
                   config.steps_per_level)


def load_metrics(path: str, config: ml_collections.ConfigDict):
  """Complete (critic, estimator) runs in ``path`` -> {'estimate': (T,), ...}.

  A run is complete when it has one row per step of this config's staircase;
  rows of incomplete or mismatching runs are dropped from the file so they are
  run again.
  """
  rows = _read_csv(path)
  by_combo = collections.defaultdict(list)
  for row in rows:
    by_combo[(row['critic'], row['estimator'])].append(row)
  truth = true_mi_per_step(config)
  complete, kept = {}, []
  for combo, combo_rows in by_combo.items():
    steps = np.array([int(r['step']) for r in combo_rows])
    true_mi = np.array([float(r['true_mi']) for r in combo_rows])
    if (len(combo_rows) == truth.size
        and np.array_equal(steps, np.arange(truth.size))
        and np.allclose(true_mi, truth)):
      complete[combo] = {
          key: np.array([float(r[key]) for r in combo_rows])
          for key in ('estimate', 'objective')}
      kept.extend(combo_rows)
  if len(kept) != len(rows):
    logging.warning('dropping %d rows of incomplete runs from %s',
                    len(rows) - len(kept), path)
    _write_csv(path, METRIC_FIELDS, kept)
  return complete


def summarize(estimate: np.ndarray, config: ml_collections.ConfigDict):
  """Per-level statistics of one run's estimates over each level's last steps.

  Consecutive estimates are strongly autocorrelated (the critic moves slowly),
  so std / sqrt(window) would understate the uncertainty of the mean. The
  standard error is instead the batch-means one: the window is cut into
  ``summary_batches`` contiguous blocks and se = std(block means) /
  sqrt(blocks).

  Returns:
    A list of dicts with the keys of ``SUMMARY_FIELDS`` (without critic and
    estimator), one per level.
  """
  n, w = config.steps_per_level, config.summary_window
  b = config.summary_batches
  if not 0 < w <= n or w % b:
    raise ValueError(f'summary_window must lie in (0, steps_per_level = {n}] '
                     f'and be a multiple of summary_batches = {b}, got {w}')
  out = []
  for level, mi in enumerate(config.levels):
    window = estimate[(level + 1) * n - w:(level + 1) * n]
    block_means = window.reshape(b, w // b).mean(axis=1)
    mean = float(np.mean(window))
    se = float(np.std(block_means, ddof=1) / math.sqrt(b))
    out.append({'true_mi': mi, 'mean': mean,
                'std': float(np.std(window, ddof=1)), 'se': se,
                'bias_over_se': (mean - mi) / se if se > 0 else math.nan,
                'n': w})
  return out


def summary_markdown(summary: list[dict],
                     config: ml_collections.ConfigDict) -> str:
  """One table per critic: estimators x levels, cells 'mean ± std (se)'."""
  lines = [f'Mean ± std (batch-means standard error) of the estimate over the '
           f'last {config.summary_window} steps of each level; batch '
           f'{config.batch_size}, log K = {math.log(config.batch_size):.2f} '
           'nats.', '']
  by_critic = collections.defaultdict(lambda: collections.defaultdict(dict))
  for row in summary:
    by_critic[row['critic']][row['estimator']][row['true_mi']] = row
  for critic_name, table in by_critic.items():
    lines += [f'### {critic_name} critic', '',
              '| estimator | '
              + ' | '.join(f'I = {mi:g}' for mi in config.levels) + ' |',
              '|---|' + '---|' * len(config.levels)]
    for name, cells in table.items():
      lines.append(f'| {name} | ' + ' | '.join(
          '{mean:.2f} ± {std:.2f} ({se:.2f})'.format(**cells[mi])
          for mi in config.levels) + ' |')
    lines.append('')
  return '\n'.join(lines)


def ema(x: np.ndarray, smoothing: float) -> np.ndarray:
  """Exponential moving average, started at the first value."""
  out = np.empty_like(x)
  acc = x[0]
  for i, v in enumerate(x):
    acc = smoothing * acc + (1.0 - smoothing) * v
    out[i] = acc
  return out


def plot(runs: dict, config: ml_collections.ConfigDict, path: str) -> None:
  """Poole et al. Fig. 2: one panel per estimator, one row per critic."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  critic_names = _ordered(config.critics, {c for c, _ in runs})
  estimator_names = _ordered(tuple(ESTIMATORS), {e for _, e in runs})
  nrows, ncols = len(critic_names), len(estimator_names)
  fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.2 * nrows),
                           sharex=True, sharey=True, squeeze=False)
  truth = true_mi_per_step(config)
  steps = np.arange(truth.size)
  log_k = math.log(config.batch_size)
  for r, critic_name in enumerate(critic_names):
    for c, name in enumerate(estimator_names):
      ax = axes[r, c]
      run = runs.get((critic_name, name))
      if run is not None:
        est = run['estimate']
        ax.plot(steps, est, color='C0', alpha=0.25, lw=0.5)
        ax.plot(steps, ema(np.nan_to_num(est, nan=0.0), config.ema), color='C0',
                lw=1.2)
      else:
        ax.text(0.5, 0.5, 'not run', ha='center', transform=ax.transAxes)
      ax.plot(steps, truth, color='k', lw=1.0)
      ax.axhline(log_k, color='k', ls='--', lw=0.8)
      ax.set_ylim(-1.0, max(config.levels) + 2.0)
      if r == 0:
        ax.set_title(name, fontsize=9)
      if c == 0:
        ax.set_ylabel(f'{critic_name}\nMI (nats)')
      if r == nrows - 1:
        ax.set_xlabel('step')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _ordered(preferred: Sequence[str], present: set) -> list[str]:
  """``present`` in the order of ``preferred``, others sorted after them."""
  return ([p for p in preferred if p in present]
          + sorted(present.difference(preferred)))


# ------------------------------------------------------------------- main --

def run(config: ml_collections.ConfigDict, workdir: str,
        mesh=None) -> list[dict]:
  """Runs the benchmark into ``workdir`` and returns the summary rows.

  Every (critic, estimator) pair of the config is trained unless it is already
  complete in ``workdir/metrics.csv``; the summary, table and plot then cover
  every complete pair in the workdir. ``mesh``: the devices to train on
  (default: all, ``parallel.make_mesh``).
  """
  for name in config.estimators:     # fail fast on a typo, listing valid ones
    registry.lookup(ESTIMATORS, name, 'estimator')
  for name in config.critics:
    registry.lookup(critics.CRITICS, name, 'critic')
  os.makedirs(workdir, exist_ok=True)
  metrics_path = os.path.join(workdir, 'metrics.csv')
  runs = load_metrics(metrics_path, config)
  truth = true_mi_per_step(config)
  start = time.perf_counter()
  for critic_name in config.critics:
    for name in config.estimators:
      if (critic_name, name) in runs:
        logging.info('%s/%s: complete in %s, skipped', critic_name, name,
                     metrics_path)
        continue
      run_dir = csvio.run_dir(
          os.path.join(workdir, 'runs', f'{critic_name}_{name}'),
          {key: config[key] for key in RUN_SETTINGS})
      est, obj, timing = train_combo(critic_name, name, config, run_dir, mesh)
      _write_csv(metrics_path, METRIC_FIELDS, (
          {'critic': critic_name, 'estimator': name, 'step': t,
           'true_mi': truth[t], 'estimate': f'{est[t]:.6g}',
           'objective': f'{obj[t]:.6g}'} for t in range(truth.size)), mode='a')
      _write_csv(os.path.join(workdir, 'timings.csv'),
                 ('critic', 'estimator', 'compile_s', 'run_s', 'steps_per_s'),
                 [{'critic': critic_name, 'estimator': name,
                   'compile_s': f'{timing["compile_s"]:.2f}',
                   'run_s': f'{timing["run_s"]:.2f}',
                   'steps_per_s': f'{truth.size / timing["run_s"]:.1f}'}],
                 mode='a')
      logging.info('%s/%s: done, %.1f s (+ %.1f s compile)', critic_name, name,
                   timing['run_s'], timing['compile_s'])
      runs[(critic_name, name)] = {'estimate': est, 'objective': obj}
  logging.info('all runs done in %.1f s', time.perf_counter() - start)

  summary = []
  for critic_name in _ordered(config.critics, {c for c, _ in runs}):
    names = {e for c, e in runs if c == critic_name}
    for name in _ordered(tuple(ESTIMATORS), names):
      for row in summarize(runs[(critic_name, name)]['estimate'], config):
        summary.append({'critic': critic_name, 'estimator': name, **row})
  _write_csv(os.path.join(workdir, 'summary.csv'), SUMMARY_FIELDS, summary)
  table = summary_markdown(summary, config)
  with open(os.path.join(workdir, 'summary.md'), 'w') as f:
    f.write(table + '\n')
  plot(runs, config, os.path.join(workdir, 'bounds.png'))
  print(table, flush=True)
  return summary


def define_flags() -> tuple[flags.FlagHolder, flags.FlagHolder]:
  """Defines --config and --workdir.

  Called only when the module runs as a program, so that tests can import
  several experiment modules without their absl flags clashing.
  """
  config = config_flags.DEFINE_config_file(
      'config',
      os.path.join(os.path.dirname(__file__), 'configs', 'bounds.py'),
      'Benchmark config (ml_collections); append :quick for the CPU smoke run.',
      lock_config=True)
  workdir = flags.DEFINE_string('workdir', None, 'Output directory.')
  return config, workdir


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required.')
  csvio.quiet_orbax()
  logging.info('JAX devices: %s', jax.devices())
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  _CONFIG, _WORKDIR = define_flags()
  app.run(main)
