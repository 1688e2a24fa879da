r"""Gaussian MI benchmark of Poole et al. (2019, Fig. 2).

x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps, I(X; Y) = -(d/2) log(1 - rho^2)
stepped through ``config.levels``; one critic is trained through the whole
staircase per (critic, estimator), as one run of ``infomax_jax.train.train``
(one chunk and checkpoint per level; the batch is sharded over every device).
An estimator is a ``bounds.REGISTRY`` entry with hyperparameters
(``configs/bounds.py:ESTIMATORS``): the critic maximises its objective, and the
curve is the MI estimate the registry reports. The per-step estimates ride in
the run's ``aux`` (checkpointed), so a resumed run keeps its curve.

``config.num_seeds = N > 1`` trains N replicas of each pair in the same run
(seeds ``seed .. seed + N - 1``, vmapped in one program; replica r equals the
single run of seed ``seed + r`` to float tolerance): the curves in ``aux`` are
then (N, T), and every finding is a mean over seeds with a 95 % Student-t
interval. N = 1 (the default) is the single run, with the same files as
before plus a ``seed`` column in metrics.csv.

  python -m experiments.bounds --config=experiments/configs/bounds.py \
      --workdir=/tmp/bounds [--config.num_seeds=3]

Writes to ``--workdir``:
  runs/<critic>_<estimator>/  each pair's ``train.train`` folder (checkpoints,
                metrics.jsonl, timing.json); an interrupted pair resumes.
  metrics.csv   one row per seed and step: critic, estimator, seed, step,
                true_mi, estimate, objective. Pairs complete here (every seed
                of the config, every step) are skipped by a rerun; a file
                without the seed column (written before it existed) is read
                as the run of ``config.seed``.
  summary.csv / summary.md   per pair and level, over the last
                ``summary_window`` steps of the level: ``mean`` (mean over
                seeds of each run's window mean), ``ci95`` (half-width of the
                95 % Student-t interval of that mean over seeds, also the
                interval of ``bias`` = mean - true MI; nan for one seed),
                ``seed_std``, the within-run ``std`` of the estimate and the
                batch-means standard error ``se`` of ``mean`` (both pooled over
                seeds; for one seed the run's own), ``bias_over_se``, ``n`` (the
                window's steps) and ``seeds``; summary.md adds each pair's
                timing.
  bounds.png    one panel per estimator, one row per critic: the estimate
                (mean over seeds, raw, and EMA-smoothed with its 95 % band
                over seeds), the true MI staircase and log K.
"""

import collections
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from scipy import signal

from experiments.configs import bounds as bounds_config
from experiments.configs import common
from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import distributions
from infomax_jax import registry
from infomax_jax import runs
from infomax_jax import train as train_lib

METRIC_FIELDS = ('critic', 'estimator', 'seed', 'step', 'true_mi', 'estimate',
                 'objective')
SUMMARY_FIELDS = ('critic', 'estimator', 'true_mi', 'mean', 'std', 'se',
                  'bias_over_se', 'n', 'seeds', 'ci95', 'bias', 'seed_std')
# Config fields that make two runs of a pair the same run (with its estimator;
# num_seeds joins them when > 1, so the folders of single runs stay valid).
RUN_SETTINGS = ('levels', 'steps_per_level', 'batch_size', 'dim', 'hidden',
                'embed_dim', 'baseline_hidden', 'learning_rate', 'seed')
CONFIDENCE = 0.95   # of the intervals over seeds


def estimator(name: str) -> tuple[bounds.Bound, dict]:
  """The registry entry and hyperparameters of estimator ``name``."""
  bound, hyperparameters = registry.lookup(bounds_config.ESTIMATORS, name,
                                           'estimator')
  spec = bounds.get(bound)
  if not spec.mi_estimate:
    raise ValueError(f'estimator {name!r}: bound {bound!r} reports no MI estimate')
  return spec, dict(hyperparameters)


def make_task(critic_name: str, estimator_name: str,
              config: ml_collections.ConfigDict) -> train_lib.Task:
  """The ``train.Task`` of one pair; ``aux`` holds the (T,) per-step curves."""
  spec, hyper = estimator(estimator_name)
  kwargs = {'hidden': tuple(config.hidden)}
  if critic_name == 'separable':
    kwargs['embed_dim'] = config.embed_dim
  critic = critics.make_critic(critic_name, **kwargs)
  baseline = critics.MLP((*config.baseline_hidden, 1))
  k, d, n = config.batch_size, config.dim, config.steps_per_level
  total = len(config.levels) * n
  rhos = jnp.asarray([distributions.mi_to_rho(mi, d) for mi in config.levels],
                     jnp.float32)

  @jax.jit
  def init(key):
    critic_key, baseline_key = jax.random.split(key)
    dummy = jnp.zeros((k, d))
    params = {'critic': critic.init(critic_key, dummy, dummy)}
    if spec.needs_baseline:
      params['baseline'] = baseline.init(baseline_key, dummy)
    aux = {'estimate': jnp.zeros((total,)), 'objective': jnp.zeros((total,))}
    if spec.stateful:
      aux['state'] = spec.init_state()
    return params, aux

  def sample(rhos, key, step):     # the step's level sets rho
    x, y = distributions.sample_correlated_gaussian(key, rhos[step // n], k, d)
    return {'x': x, 'y': y}

  def update(state, batch, key, tx):
    del key

    def loss_fn(params):
      scores = critic.apply(params['critic'], batch['x'], batch['y'])
      a = (baseline.apply(params['baseline'], batch['y'])[:, 0]
           if spec.needs_baseline else None)
      out = spec(scores, log_baseline=a, state=state.aux.get('state'), **hyper)
      return -out.objective, out

    grads, out = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    aux = {'estimate': state.aux['estimate'].at[state.step].set(out.estimate),
           'objective': state.aux['objective'].at[state.step].set(out.objective)}
    if spec.stateful:
      aux['state'] = out.state
    return (state.replace(params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state, aux=aux),
            {'estimate': out.estimate, 'objective': out.objective})

  return train_lib.Task(init=init, sample=sample, data=rhos, update=update,
                        sample_takes_step=True)


def train_combo(critic_name: str, estimator_name: str,
                config: ml_collections.ConfigDict, workdir: str, mesh=None):
  """Trains one pair through the staircase in ``workdir`` (resumed if there).

  Returns:
    (estimates, objectives, timing): two (T,) arrays (T = levels x
    steps_per_level), or (num_seeds, T) with ``config.num_seeds > 1`` (row r:
    seed ``config.seed + r``), and the run's ``timing.json`` entry.
  """
  n, total = config.steps_per_level, len(config.levels) * config.steps_per_level
  train_config = common.training(
      seed=config.seed, num_seeds=train_lib.num_replicas(config),
      learning_rate=config.learning_rate, optimizer='adam',
      batch_size=config.batch_size, num_steps=total, log_every=n,
      eval_every=total, checkpoint_every=n, keep_checkpoints=1)
  state = train_lib.train(train_config, make_task(critic_name, estimator_name,
                                                  config), workdir, mesh=mesh)
  aux = jax.device_get(state.aux)
  return (np.asarray(aux['estimate']), np.asarray(aux['objective']),
          runs.read_timing(workdir).get('train', {}))


def true_mi_per_step(config: ml_collections.ConfigDict) -> np.ndarray:
  return np.repeat(np.asarray(config.levels, np.float64), config.steps_per_level)


def metric_rows(critic_name: str, name: str, seeds: list, estimate: np.ndarray,
                objective: np.ndarray, truth: np.ndarray) -> list[dict]:
  """The metrics.csv rows of one pair: seed-major, one per seed and step."""
  est, obj = np.atleast_2d(estimate), np.atleast_2d(objective)
  return [{'critic': critic_name, 'estimator': name, 'seed': seed, 'step': t,
           'true_mi': truth[t], 'estimate': f'{est[r, t]:.6g}',
           'objective': f'{obj[r, t]:.6g}'}
          for r, seed in enumerate(seeds) for t in range(truth.size)]


def _pair_curves(rows: list[dict], seeds: list[int], truth: np.ndarray):
  """``{'estimate', 'objective'}`` of one pair's rows when they hold every
  step of every seed in ``seeds`` (and no other seed), else None; (T,) for
  one seed, (N, T) for more."""
  by_seed = collections.defaultdict(list)
  for row in rows:
    by_seed[int(row['seed'])].append(row)
  if sorted(by_seed) != sorted(seeds):
    return None
  for seed_rows in by_seed.values():
    steps = [int(r['step']) for r in seed_rows]
    true_mi = [float(r['true_mi']) for r in seed_rows]
    if steps != list(range(truth.size)) or not np.allclose(true_mi, truth):
      return None
  curves = {key: np.array([[float(r[key]) for r in by_seed[s]] for s in seeds])
            for key in ('estimate', 'objective')}
  return {k: v[0] if len(seeds) == 1 else v for k, v in curves.items()}


def load_metrics(path: str, config: ml_collections.ConfigDict) -> dict:
  """Complete pairs of ``path`` -> {'estimate', 'objective'}: (T,) arrays, or
  (num_seeds, T) with ``config.num_seeds > 1``.

  A pair is complete with one row per step of this config's staircase for
  every seed of the config; rows of other pairs are dropped from the file, so
  those pairs run again. Rows without a seed (files written before the
  column) are taken as ``config.seed``'s and rewritten with it.
  """
  rows = runs.read_csv(path)
  upgraded = bool(rows) and 'seed' not in rows[0]
  for row in rows:
    if row.get('seed') in (None, ''):
      row['seed'] = config.seed
  by_pair = collections.defaultdict(list)
  for row in rows:
    by_pair[row['critic'], row['estimator']].append(row)
  truth, seeds = true_mi_per_step(config), train_lib.replica_seeds(config)
  complete, kept = {}, []
  for pair, pair_rows in by_pair.items():
    curves = _pair_curves(pair_rows, seeds, truth)
    if curves is not None:
      complete[pair] = curves
      kept.extend(pair_rows)
  if len(kept) != len(rows) or upgraded:
    runs.write_csv(path, METRIC_FIELDS, kept)
  return complete


def level_windows(estimate: np.ndarray, config: ml_collections.ConfigDict
                  ) -> np.ndarray:
  """(seeds, levels, summary_window): each level's last steps of each run.

  ``estimate``: (T,) of one run or (N, T) of N runs.
  """
  n, w, b = config.steps_per_level, config.summary_window, config.summary_batches
  if not 0 < w <= n or w % b:
    raise ValueError(f'summary_window must lie in (0, steps_per_level = {n}] '
                     f'and be a multiple of summary_batches = {b}, got {w}')
  est = np.atleast_2d(np.asarray(estimate, np.float64))
  return est.reshape(est.shape[0], len(config.levels), n)[:, :, n - w:]


def summarize(estimate: np.ndarray, config: ml_collections.ConfigDict) -> list:
  """Per-level statistics of the estimate over each level's last steps.

  Args:
    estimate: (T,) of one run or (N, T) of N runs (seeds).
    config: the benchmark config (levels, steps_per_level, summary_window,
      summary_batches).

  Returns:
    One dict per level: ``mean`` over seeds of the runs' window means,
    ``ci95`` (half-width of its Student-t 95 % interval over seeds; nan for
    one seed), ``bias`` = mean - true_mi (same interval), ``seed_std`` (std
    of the window means over seeds; nan for one seed), ``std`` (within-run std
    over the window, root mean square over seeds), ``se`` (batch-means
    standard error of ``mean`` from the within-run noise) and
    ``bias_over_se``; ``n`` steps per window, ``seeds`` runs.

  Consecutive estimates are strongly autocorrelated, so a run's standard error
  is the batch-means one: the window is cut into ``summary_batches``
  contiguous blocks and se = std(block means) / sqrt(blocks); over N
  independent runs the se of their mean is sqrt(sum se_r^2) / N.
  """
  windows = level_windows(estimate, config)             # (N, L, w)
  seeds, _, w = windows.shape
  b = config.summary_batches
  run_means = windows.mean(axis=-1)                     # (N, L)
  blocks = windows.reshape(*windows.shape[:2], b, w // b).mean(axis=-1)
  run_se = blocks.std(axis=-1, ddof=1) / math.sqrt(b)   # (N, L)
  std = np.sqrt(np.mean(windows.var(axis=-1, ddof=1), axis=0))
  se = np.sqrt(np.sum(run_se**2, axis=0)) / seeds
  mean, half = runs.plots.mean_interval(run_means, CONFIDENCE)
  spread = run_means.std(axis=0, ddof=1) if seeds > 1 else np.full_like(mean, np.nan)
  if seeds < 2:
    half = np.full_like(mean, np.nan)
  out = []
  for level, mi in enumerate(config.levels):
    m, s = float(mean[level]), float(se[level])
    out.append({'true_mi': mi, 'mean': m, 'std': float(std[level]), 'se': s,
                'bias_over_se': (m - mi) / s if s > 0 else math.nan, 'n': w,
                'seeds': seeds, 'ci95': float(half[level]), 'bias': m - mi,
                'seed_std': float(spread[level])})
  return out


def _critic_tables(summary: list, cell) -> dict[str, str]:
  """{critic: Markdown table of estimators x levels, ``cell(row)`` each}."""
  out = {}
  for critic_name in dict.fromkeys(r['critic'] for r in summary):
    table = collections.defaultdict(dict)
    for r in summary:
      if r['critic'] == critic_name:
        table[r['estimator']][f'I = {r["true_mi"]:g}'] = cell(r)
    levels = list(dict.fromkeys(
        f'I = {r["true_mi"]:g}' for r in summary if r['critic'] == critic_name))
    rows = [{'estimator': name, **cells} for name, cells in table.items()]
    out[critic_name] = runs.markdown_table(rows, ['estimator', *levels])
  return out


def summary_markdown(summary: list, timing: list,
                     config: ml_collections.ConfigDict) -> str:
  """One table per critic (estimators x levels), then timing.

  One seed: 'mean ± std (se)' per cell, as for a single run. N > 1 seeds:
  'mean ± ci95 (se)' and a second table of the bias 'bias ± ci95'.
  """
  seeds = train_lib.replica_seeds(config)
  k = config.batch_size
  tail = (f'batch {k}, log K = {math.log(k):.2f} nats.\n')
  if len(seeds) == 1:
    text = (f'n = 1 seed (seed {seeds[0]}). Mean ± std (batch-means standard '
            f'error) of the estimate over the last {config.summary_window} '
            f'steps of each level; ' + tail)
    tables = _critic_tables(
        summary, '{mean:.2f} ± {std:.2f} ({se:.2f})'.format_map)
    return text + ''.join(f'\n### {c} critic\n\n{t}' for c, t in tables.items()
                          ) + _timing_markdown(timing)
  text = (f'n = {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), trained side by '
          f'side in one program. Each run\'s mean of the estimate over the last '
          f'{config.summary_window} steps of each level; per cell the mean over '
          f'seeds ± the half-width of its {CONFIDENCE:.0%} Student-t interval '
          f'over seeds (and, in parentheses, the within-run batch-means '
          f'standard error of that mean); bias = mean - true MI with the same '
          f'interval; ' + tail)
  means = _critic_tables(summary, '{mean:.2f} ± {ci95:.2f} ({se:.2f})'.format_map)
  biases = _critic_tables(summary, '{bias:+.2f} ± {ci95:.2f}'.format_map)
  for c in means:
    text += (f'\n### {c} critic\n\n{means[c]}\nbias (mean - true MI) ± '
             f'{CONFIDENCE:.0%} interval over seeds:\n\n{biases[c]}')
  return text + _timing_markdown(timing)


def _timing_markdown(timing: list) -> str:
  return '\n### timing\n\n' + runs.markdown_table(
      timing, ['critic', 'estimator', 'seconds', 'compile_seconds', 'steps_per_s'],
      formats={'seconds': '.1f', 'compile_seconds': '.1f', 'steps_per_s': '.1f'})


def smoothed(estimate: np.ndarray, a: float) -> np.ndarray:
  """EMA (weight ``a`` on the past) of each run's curve, started at its first
  value; (T,) or (N, T) in, (N, T) out."""
  est = np.atleast_2d(estimate)
  return signal.lfilter([1.0 - a], [1.0, -a], est, axis=-1, zi=a * est[:, :1])[0]


def plot(results: dict, config: ml_collections.ConfigDict, path: str) -> str:
  """Poole et al. Fig. 2: one panel per estimator, one row per critic; with
  several seeds the mean curve and its 95 % band over seeds."""
  critic_names = list(dict.fromkeys(c for c, _ in results))
  names = list(dict.fromkeys(e for _, e in results))
  fig, axes = runs.plots.panels(len(critic_names) * len(names),
                                rows=len(critic_names), width=2.4, height=2.2)
  truth = true_mi_per_step(config)
  for i, (ax, (critic_name, name)) in enumerate(
      zip(axes, [(c, e) for c in critic_names for e in names])):
    est = results.get((critic_name, name))
    if est is not None:
      est = np.atleast_2d(np.nan_to_num(est['estimate'], nan=0.0))
      ax.plot(est.mean(axis=0), color='C0', alpha=0.25, lw=0.5)
      runs.plots.band(ax, np.arange(truth.size), smoothed(est, config.ema),
                      color='C0', confidence=CONFIDENCE, lw=1.2)
    ax.plot(truth, color='k', lw=1.0)
    ax.axhline(math.log(config.batch_size), color='k', ls='--', lw=0.8)
    ax.set_ylim(-1.0, max(config.levels) + 2.0)
    ax.set_title(name if i < len(names) else '', fontsize=9)
    runs.plots.labels(ax, 'step', f'{critic_name}\nMI (nats)' if i % len(names) == 0
                      else '')
  seeds = train_lib.replica_seeds(config)
  title = (f'mean of n = {len(seeds)} seeds, {CONFIDENCE:.0%} band over seeds'
           if len(seeds) > 1 else None)
  return runs.plots.save(fig, path, title=title)


def run(config: ml_collections.ConfigDict, workdir: str, mesh=None) -> list:
  """Trains every pair not yet complete in ``workdir/metrics.csv``; returns the
  summary rows of every complete pair (``mesh``: default every device)."""
  for name in config.estimators:     # fail fast on a typo, listing valid ones
    estimator(name)
  for name in config.critics:
    registry.lookup(critics.CRITICS, name, 'critic')
  seeds = train_lib.replica_seeds(config)
  os.makedirs(workdir, exist_ok=True)
  metrics_path = os.path.join(workdir, 'metrics.csv')
  results = load_metrics(metrics_path, config)
  truth = true_mi_per_step(config)
  settings = {key: config[key] for key in RUN_SETTINGS}
  if len(seeds) > 1:
    settings['num_seeds'] = len(seeds)
  for critic_name in config.critics:
    for name in config.estimators:
      if (critic_name, name) in results:
        continue
      run_dir = runs.run_dir(
          os.path.join(workdir, 'runs', f'{critic_name}_{name}'),
          {**settings, 'estimator': bounds_config.ESTIMATORS[name]})
      est, obj, _ = train_combo(critic_name, name, config, run_dir, mesh)
      runs.append_csv(metrics_path, METRIC_FIELDS,
                      metric_rows(critic_name, name, seeds, est, obj, truth))
      results[critic_name, name] = {'estimate': est, 'objective': obj}

  rank = lambda seq, x: list(seq).index(x) if x in seq else len(seq)
  results = dict(sorted(results.items(), key=lambda item: (
      rank(config.critics, item[0][0]),
      rank(bounds_config.ALL_ESTIMATORS, item[0][1]), item[0])))
  summary = [{'critic': c, 'estimator': e, **row}
             for (c, e), r in results.items() for row in summarize(r['estimate'], config)]
  timing = [{'critic': c, 'estimator': e, **runs.read_timing(
      os.path.join(workdir, 'runs', f'{c}_{e}')).get('train', {})} for c, e in results]
  runs.write_csv(os.path.join(workdir, 'summary.csv'), SUMMARY_FIELDS, summary)
  table = summary_markdown(summary, timing, config)
  runs.write_text(os.path.join(workdir, 'summary.md'), table)
  plot(results, config, os.path.join(workdir, 'bounds.png'))
  print(table, flush=True)
  return summary


if __name__ == '__main__':
  runs.main(run, __file__)
