r"""Gaussian MI benchmark of Poole et al. (2019, Fig. 2).

x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps, I(X; Y) = -(d/2) log(1 - rho^2)
stepped through ``config.levels``; one critic is trained through the whole
staircase per (critic, estimator), as one run of ``infomax_jax.train.train``
(one chunk and checkpoint per level; the batch is sharded over every device).
An estimator is a ``bounds.REGISTRY`` entry with hyperparameters
(``configs/bounds.py:ESTIMATORS``): the critic maximises its objective, and the
curve is the MI estimate the registry reports. The per-step estimates ride in
the run's ``aux`` (checkpointed), so a resumed run keeps its curve.

  python -m experiments.bounds --config=experiments/configs/bounds.py \
      --workdir=/tmp/bounds

Writes to ``--workdir``:
  runs/<critic>_<estimator>/  each pair's ``train.train`` folder (checkpoints,
                metrics.jsonl, timing.json); an interrupted pair resumes.
  metrics.csv   one row per step: critic, estimator, step, true_mi, estimate,
                objective. Pairs complete here are skipped by a rerun.
  summary.csv / summary.md   mean, std and batch-means standard error of the
                estimate over the last ``summary_window`` steps of each level
                (and, in summary.md, each pair's timing).
  bounds.png    one panel per estimator, one row per critic: the estimate
                (raw and EMA-smoothed), the true MI staircase and log K.
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

METRIC_FIELDS = ('critic', 'estimator', 'step', 'true_mi', 'estimate',
                 'objective')
SUMMARY_FIELDS = ('critic', 'estimator', 'true_mi', 'mean', 'std', 'se',
                  'bias_over_se', 'n')
# Config fields that make two runs of a pair the same run (with its estimator).
RUN_SETTINGS = ('levels', 'steps_per_level', 'batch_size', 'dim', 'hidden',
                'embed_dim', 'baseline_hidden', 'learning_rate', 'seed')


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
    (estimates, objectives, timing): two (levels x steps_per_level,) arrays
    and the run's ``timing.json`` entry.
  """
  n, total = config.steps_per_level, len(config.levels) * config.steps_per_level
  train_config = common.training(
      seed=config.seed, learning_rate=config.learning_rate, optimizer='adam',
      batch_size=config.batch_size, num_steps=total, log_every=n,
      eval_every=total, checkpoint_every=n, keep_checkpoints=1)
  state = train_lib.train(train_config, make_task(critic_name, estimator_name,
                                                  config), workdir, mesh=mesh)
  aux = jax.device_get(state.aux)
  return (np.asarray(aux['estimate']), np.asarray(aux['objective']),
          runs.read_timing(workdir).get('train', {}))


def true_mi_per_step(config: ml_collections.ConfigDict) -> np.ndarray:
  return np.repeat(np.asarray(config.levels, np.float64), config.steps_per_level)


def load_metrics(path: str, config: ml_collections.ConfigDict) -> dict:
  """Complete pairs of ``path`` -> {'estimate': (T,), 'objective': (T,)}.

  A pair is complete with one row per step of this config's staircase; rows
  of other pairs are dropped from the file, so those pairs run again.
  """
  rows = runs.read_csv(path)
  by_pair = collections.defaultdict(list)
  for row in rows:
    by_pair[row['critic'], row['estimator']].append(row)
  truth = true_mi_per_step(config)
  complete, kept = {}, []
  for pair, pair_rows in by_pair.items():
    steps = [int(r['step']) for r in pair_rows]
    true_mi = [float(r['true_mi']) for r in pair_rows]
    if steps == list(range(truth.size)) and np.allclose(true_mi, truth):
      complete[pair] = {key: np.array([float(r[key]) for r in pair_rows])
                        for key in ('estimate', 'objective')}
      kept.extend(pair_rows)
  if len(kept) != len(rows):
    runs.write_csv(path, METRIC_FIELDS, kept)
  return complete


def summarize(estimate: np.ndarray, config: ml_collections.ConfigDict) -> list:
  """Per-level mean, std and standard error over each level's last steps.

  Consecutive estimates are strongly autocorrelated, so the standard error is
  the batch-means one: the window is cut into ``summary_batches`` contiguous
  blocks and se = std(block means) / sqrt(blocks).
  """
  n, w, b = config.steps_per_level, config.summary_window, config.summary_batches
  if not 0 < w <= n or w % b:
    raise ValueError(f'summary_window must lie in (0, steps_per_level = {n}] '
                     f'and be a multiple of summary_batches = {b}, got {w}')
  out = []
  for level, mi in enumerate(config.levels):
    window = estimate[(level + 1) * n - w:(level + 1) * n]
    mean = float(np.mean(window))
    se = float(np.std(window.reshape(b, -1).mean(axis=1), ddof=1) / math.sqrt(b))
    out.append({'true_mi': mi, 'mean': mean, 'std': float(np.std(window, ddof=1)),
                'se': se, 'bias_over_se': (mean - mi) / se if se > 0 else math.nan,
                'n': w})
  return out


def summary_markdown(summary: list, timing: list,
                     config: ml_collections.ConfigDict) -> str:
  """One table per critic (estimators x levels: 'mean ± std (se)'), then timing."""
  text = (f'Mean ± std (batch-means standard error) of the estimate over the '
          f'last {config.summary_window} steps of each level; batch '
          f'{config.batch_size}, log K = {math.log(config.batch_size):.2f} nats.\n')
  levels = [f'I = {mi:g}' for mi in config.levels]
  for critic_name in dict.fromkeys(r['critic'] for r in summary):
    table = collections.defaultdict(dict)
    for r in summary:
      if r['critic'] == critic_name:
        table[r['estimator']][f'I = {r["true_mi"]:g}'] = (
            '{mean:.2f} ± {std:.2f} ({se:.2f})'.format(**r))
    rows = [{'estimator': name, **cells} for name, cells in table.items()]
    text += f'\n### {critic_name} critic\n\n' + runs.markdown_table(
        rows, ['estimator', *levels])
  return text + '\n### timing\n\n' + runs.markdown_table(
      timing, ['critic', 'estimator', 'seconds', 'compile_seconds', 'steps_per_s'],
      formats={'seconds': '.1f', 'compile_seconds': '.1f', 'steps_per_s': '.1f'})


def plot(results: dict, config: ml_collections.ConfigDict, path: str) -> str:
  """Poole et al. Fig. 2: one panel per estimator, one row per critic."""
  critic_names = list(dict.fromkeys(c for c, _ in results))
  names = list(dict.fromkeys(e for _, e in results))
  fig, axes = runs.plots.panels(len(critic_names) * len(names),
                                rows=len(critic_names), width=2.4, height=2.2)
  truth = true_mi_per_step(config)
  a = config.ema
  for i, (ax, (critic_name, name)) in enumerate(
      zip(axes, [(c, e) for c in critic_names for e in names])):
    est = results.get((critic_name, name))
    if est is not None:
      est = np.nan_to_num(est['estimate'], nan=0.0)
      smooth = signal.lfilter([1.0 - a], [1.0, -a], est, zi=[a * est[0]])[0]
      ax.plot(est, color='C0', alpha=0.25, lw=0.5)
      ax.plot(smooth, color='C0', lw=1.2)
    ax.plot(truth, color='k', lw=1.0)
    ax.axhline(math.log(config.batch_size), color='k', ls='--', lw=0.8)
    ax.set_ylim(-1.0, max(config.levels) + 2.0)
    ax.set_title(name if i < len(names) else '', fontsize=9)
    runs.plots.labels(ax, 'step', f'{critic_name}\nMI (nats)' if i % len(names) == 0
                      else '')
  return runs.plots.save(fig, path)


def run(config: ml_collections.ConfigDict, workdir: str, mesh=None) -> list:
  """Trains every pair not yet complete in ``workdir/metrics.csv``; returns the
  summary rows of every complete pair (``mesh``: default every device)."""
  for name in config.estimators:     # fail fast on a typo, listing valid ones
    estimator(name)
  for name in config.critics:
    registry.lookup(critics.CRITICS, name, 'critic')
  os.makedirs(workdir, exist_ok=True)
  metrics_path = os.path.join(workdir, 'metrics.csv')
  results = load_metrics(metrics_path, config)
  truth = true_mi_per_step(config)
  settings = {key: config[key] for key in RUN_SETTINGS}
  for critic_name in config.critics:
    for name in config.estimators:
      if (critic_name, name) in results:
        continue
      run_dir = runs.run_dir(
          os.path.join(workdir, 'runs', f'{critic_name}_{name}'),
          {**settings, 'estimator': bounds_config.ESTIMATORS[name]})
      est, obj, _ = train_combo(critic_name, name, config, run_dir, mesh)
      runs.append_csv(metrics_path, METRIC_FIELDS, [
          {'critic': critic_name, 'estimator': name, 'step': t, 'true_mi': truth[t],
           'estimate': f'{est[t]:.6g}', 'objective': f'{obj[t]:.6g}'}
          for t in range(truth.size)])
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
