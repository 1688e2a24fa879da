r"""DEMI vs InfoNCE on correlated Gaussians whose MI is far above log K.

For every true MI, batch size K and number of subviews T of the config, trains
InfoNCE (one critic on the whole x) and DEMI (T critics, one per chain-rule
term; ``infomax_jax.demi.estimate_terms``) with oracle negatives from
p(y | x^(t-1)) and/or importance-resampled in-batch negatives, each run through
``infomax_jax.train.train`` (one jitted ``lax.scan`` per ``log_every`` steps,
checkpoints, resume).

  python -m experiments.demi --config=experiments/configs/demi.py \
      --workdir=/tmp/demi

Writes to ``--workdir``:
  runs/<run>/       each run's metrics.jsonl and checkpoints (an interrupted
                    run resumes from its checkpoint; a run whose metrics hold
                    the final evaluation is skipped).
  metrics.csv       every run's training (mean over each chunk) and evaluation
                    records: run, method, true_mi, K, T, step, split, estimate,
                    term_1..term_T, ess_2..ess_T.
  timings.csv       wall-clock seconds and steps/s per run.
  summary.csv / summary.md  final held-out estimates (mean over fresh batches)
                    next to the true MI, log K, the closed-form chain-rule
                    terms and the analytic optimal critics' values.
  demi.png          estimate vs step per (true MI, K, T) panel.
  demi_terms.png    each chain-rule term vs step against its true value.
"""

import csv
import dataclasses
import functools
import math
import os
import time
from typing import Any, Optional, Sequence

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
from infomax_jax import demi
from infomax_jax import registry
from infomax_jax import train

Array = jax.Array

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), 'configs', 'demi.py'),
    'DEMI benchmark config (ml_collections); :quick for a smoke run, :full for '
    'the whole grid.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')

# Method -> kind of negatives of the conditional terms (None: plain InfoNCE).
METHODS: dict[str, Optional[str]] = {
    'infonce': None,
    'demi_oracle': 'oracle',
    'demi_resample': 'resample',
    'demi_reweight': 'reweight',
}
METHOD_LABELS = {
    'infonce': 'InfoNCE', 'demi_oracle': 'DEMI (oracle)',
    'demi_resample': 'DEMI (resampled)', 'demi_reweight': 'DEMI (reweighted)',
}


@dataclasses.dataclass(frozen=True)
class Setting:
  """One benchmark cell: the data (true MI), K and T."""
  true_mi: float
  batch_size: int
  num_subviews: int

  def run_name(self, method: str) -> str:
    t = 1 if method == 'infonce' else self.num_subviews
    return f'mi{self.true_mi:g}_K{self.batch_size}_T{t}_{method}'


def settings(config: ml_collections.ConfigDict) -> list[Setting]:
  return [Setting(float(mi), int(k), int(t)) for mi in config.true_mi
          for k in config.batch_sizes for t in config.num_subviews]


# ------------------------------------------------------------------- runs --

def make_task(config: ml_collections.ConfigDict, setting: Setting,
              method: str) -> tuple[train.Task, ml_collections.ConfigDict]:
  """The ``train.Task`` of one run and the run's ``train.train`` config."""
  negatives = registry.lookup(METHODS, method, 'method')
  model = demi.GaussianViews.correlated(config.dim, setting.true_mi)
  k = setting.batch_size
  if negatives is None:
    masks = np.ones((1, config.dim), np.float32)
  else:
    masks = demi.prefix_masks(config.dim, setting.num_subviews)
  num_terms = masks.shape[0]
  critic = demi.make_pair_critic(config.critic, hidden=tuple(config.hidden),
                                 **({'embed_dim': config.embed_dim}
                                    if config.critic == 'separable' else {}))
  samplers = [model.conditional_sampler(masks[t]) for t in range(num_terms - 1)]

  def init(key):
    x0 = jnp.zeros((1, config.dim))
    return [critic.init(kt, x0, x0) for kt in jax.random.split(key, num_terms)], ()

  def sample(data, key):
    del data
    x, y = model.sample(key, k)
    return {'x': x, 'y': y}

  def terms(params, batch, key):
    fns = [functools.partial(critic.apply, p) for p in params]
    return demi.estimate_terms(fns, batch['x'], batch['y'], masks, key,
                               negatives=negatives or 'oracle',
                               oracle_samplers=samplers)

  def metrics_of(values, diagnostics):
    out = {'estimate': jnp.sum(values)}
    out.update({f'term_{t + 1}': values[t] for t in range(num_terms)})
    if negatives in ('resample', 'reweight'):
      out.update({f'ess_{t + 2}': diagnostics['ess'][t]
                  for t in range(num_terms - 1)})
    return out

  def loss(params, aux, batch, key):
    values, diagnostics = terms(params, batch, key)
    return -jnp.sum(values), (metrics_of(values, diagnostics), aux)

  eval_key = jax.random.PRNGKey(config.seed + 1)   # same batches at every eval

  @jax.jit
  def evaluate_on_device(params):
    def one(i):
      data_key, neg_key = jax.random.split(jax.random.fold_in(eval_key, i))
      return metrics_of(*terms(params, sample((), data_key), neg_key))
    return jax.tree.map(jnp.mean, jax.lax.map(one, jnp.arange(config.eval_batches)))

  def evaluate(params, aux, step):
    del aux, step
    return {k_: float(v) for k_, v in jax.device_get(evaluate_on_device(params)).items()}

  run_config = ml_collections.ConfigDict(dict(
      seed=config.seed, num_steps=config.num_steps, batch_size=k,
      learning_rate=config.learning_rate, log_every=config.log_every,
      eval_every=config.eval_every, checkpoint_every=config.checkpoint_every))
  task = train.Task(init=init, sample=sample, loss=loss, evaluate=evaluate)
  return task, run_config


def optimal_reference(config: ml_collections.ConfigDict,
                      setting: Setting) -> dict[str, Any]:
  """InfoNCE and DEMI with the analytic optimal critics.

  The critic of term t is log p(y | x^(t)) / p(y | x^(t-1)); averaged over
  ``config.optimal_batches`` batches of K pairs. With oracle negatives these
  are the best values the trained critics can reach in expectation at this K;
  with resampled negatives the gap to the oracle value is the bias of the
  importance-resampling approximation itself (no critic error).
  """
  model = demi.GaussianViews.correlated(config.dim, setting.true_mi)
  masks = demi.prefix_masks(config.dim, setting.num_subviews)
  fns = [model.log_density_ratio(masks[0])]
  fns += [model.log_density_ratio(masks[t], masks[t - 1])
          for t in range(1, len(masks))]
  samplers = [model.conditional_sampler(masks[t]) for t in range(len(masks) - 1)]
  full = model.log_density_ratio(np.ones(config.dim))

  @jax.jit
  def one(key):
    data_key, neg_key = jax.random.split(key)
    x, y = model.sample(data_key, setting.batch_size)
    oracle, _ = demi.estimate_terms(fns, x, y, masks, neg_key, negatives='oracle',
                                    oracle_samplers=samplers)
    resampled, _ = demi.estimate_terms(fns, x, y, masks, neg_key,
                                       negatives='resample')
    return oracle, resampled, bounds.infonce(demi.pairwise_scores(full, x, y))

  keys = jax.random.split(jax.random.PRNGKey(config.seed + 2),
                          config.optimal_batches)
  oracle, resampled, infonce = jax.lax.map(one, keys)
  return {'terms': np.asarray(oracle.mean(0)).tolist(),
          'demi': float(oracle.sum(1).mean()),
          'demi_resample': float(resampled.sum(1).mean()),
          'infonce': float(infonce.mean())}


def _load_timings(path: str) -> dict[str, dict[str, float]]:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {r['run']: {'seconds': float(r['seconds']),
                       'steps_per_s': float(r['steps_per_s'])}
            for r in csv.DictReader(f)}


def _write_timings(path: str, timings: dict[str, dict[str, float]]) -> None:
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['run', 'seconds', 'steps_per_s'])
    for name, t in timings.items():
      w.writerow([name, f'{t["seconds"]:.1f}', f'{t["steps_per_s"]:.2f}'])


def _runs(config: ml_collections.ConfigDict) -> list[tuple[Setting, str]]:
  """(setting, method) pairs to train; InfoNCE once per (true MI, K)."""
  out, seen = [], set()
  for s in settings(config):
    for method in config.methods:
      name = s.run_name(method)
      if name not in seen:
        seen.add(name)
        out.append((s, method))
  return out


# ---------------------------------------------------------------- outputs --

def _final_eval(run_dir: str) -> dict[str, float]:
  """The last evaluation record of a run ({} if there is none yet)."""
  if not os.path.exists(os.path.join(run_dir, 'metrics.jsonl')):
    return {}
  evals = runs.read_metrics(run_dir, 'eval')
  return evals[-1] if evals else {}


def _collect_metrics(config, workdir: str) -> list[dict[str, Any]]:
  rows = []
  max_terms = max(config.num_subviews)
  for s, method in _runs(config):
    name = s.run_name(method)
    for r in runs.read_metrics(os.path.join(workdir, 'runs', name)):
      row = {'run': name, 'method': method, 'true_mi': s.true_mi,
             'K': s.batch_size, 'T': 1 if method == 'infonce' else s.num_subviews,
             'step': r['step'], 'split': r['split'], 'estimate': r['estimate']}
      for t in range(1, max_terms + 1):
        row[f'term_{t}'] = r.get(f'term_{t}', '')
      for t in range(2, max_terms + 1):
        row[f'ess_{t}'] = r.get(f'ess_{t}', '')
      rows.append(row)
  return rows


def _write_csv(path: str, rows: Sequence[dict[str, Any]]) -> None:
  if not rows:
    return
  with open(path, 'w', newline='') as f:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(f, fieldnames=fields, restval='')
    w.writeheader()
    w.writerows(rows)


def summarize(config, workdir: str, references: dict[Setting, dict]) -> list[dict]:
  """One summary row per setting (final held-out estimates of each method)."""
  rows = []
  for s in settings(config):
    model = demi.GaussianViews.correlated(config.dim, s.true_mi)
    masks = demi.prefix_masks(config.dim, s.num_subviews)
    true_terms = model.chain_terms(masks)
    ref = references[s]
    row = {'true_mi': s.true_mi, 'K': s.batch_size, 'log_K': math.log(s.batch_size),
           'T': s.num_subviews,
           'true_terms': ' + '.join(f'{v:.2f}' for v in true_terms),
           'optimal_infonce': ref['infonce'], 'optimal_demi_oracle': ref['demi'],
           'optimal_demi_resample': ref['demi_resample'],
           'optimal_terms': ' + '.join(f'{v:.2f}' for v in ref['terms'])}
    for method in config.methods:
      final = _final_eval(os.path.join(workdir, 'runs', s.run_name(method)))
      if not final:
        continue
      row[method] = final['estimate']
      if method != 'infonce':
        row[f'{method}_terms'] = ' + '.join(
            f'{final[f"term_{t}"]:.2f}' for t in range(1, s.num_subviews + 1))
        if 'ess_2' in final:
          row[f'{method}_ess'] = ' / '.join(
              f'{final[f"ess_{t}"]:.1f}' for t in range(2, s.num_subviews + 1))
    rows.append(row)
  return rows


def done_when(row: dict[str, Any], method: str) -> Optional[bool]:
  """The issue's criterion for one DEMI method in one summary row.

  Applies when the true MI >= 2 log K: DEMI > InfoNCE + 1 nat, DEMI > log K and
  DEMI < true MI. None when it does not apply or a value is missing.
  """
  if row['true_mi'] < 2 * row['log_K'] or method not in row or 'infonce' not in row:
    return None
  v = row[method]
  return bool(v > row['infonce'] + 1.0 and v > row['log_K'] and v < row['true_mi'])


def summary_markdown(rows: Sequence[dict], config) -> str:
  demis = [m for m in config.methods if m != 'infonce']
  head = (['true MI', 'K', 'log K', 'T', 'InfoNCE']
          + [METHOD_LABELS[m] for m in demis]
          + ['optimal critic: InfoNCE', 'optimal critic: DEMI (oracle)',
             'optimal critic: DEMI (resampled)']
          + ['true terms'] + [f'{METHOD_LABELS[m]} terms' for m in demis]
          + [f'{METHOD_LABELS[m]} ESS' for m in demis if m != 'demi_oracle']
          + ['criterion (' + ', '.join(METHOD_LABELS[m] for m in demis) + ')'])
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  fmt = lambda v: f'{v:.2f}' if isinstance(v, float) else str(v)
  for r in rows:
    cells = [fmt(r['true_mi']), str(r['K']), fmt(r['log_K']), str(r['T']),
             fmt(r.get('infonce', '-'))]
    cells += [fmt(r.get(m, '-')) for m in demis]
    cells += [fmt(r['optimal_infonce']), fmt(r['optimal_demi_oracle']),
              fmt(r['optimal_demi_resample']), r['true_terms']]
    cells += [r.get(f'{m}_terms', '-') for m in demis]
    cells += [r.get(f'{m}_ess', '-') for m in demis if m != 'demi_oracle']
    checks = [done_when(r, m) for m in demis]
    cells.append(', '.join('n/a' if c is None else ('pass' if c else 'FAIL')
                           for c in checks))
    lines.append('| ' + ' | '.join(cells) + ' |')
  notes = [
      '',
      'Estimates in nats: held-out mean over '
      f'{config.eval_batches} fresh batches after {config.num_steps} steps. '
      '"optimal critic": the analytic log density ratios, mean over '
      f'{config.optimal_batches} batches; with oracle negatives it is the best '
      'a trained critic reaches at this K, with resampled negatives it shows the '
      'bias of the resampling approximation alone. Terms: I(x^(1); y) + '
      'I(x^(2); y | x^(1)) + ... '
      'ESS: mean effective sample size of the importance weights of each '
      f'conditional term (out of K - 1 candidates). Criterion (issue 8, only '
      'where true MI >= 2 log K): DEMI > InfoNCE + 1 nat, DEMI > log K and '
      'DEMI < true MI.',
  ]
  return '\n'.join(lines + notes) + '\n'


def plot(config, metrics: Sequence[dict], path: str, terms_path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  cells = settings(config)
  ncols = len(config.batch_sizes) * len(config.num_subviews)
  nrows = len(config.true_mi)
  colors = {'infonce': 'C0', 'demi_oracle': 'C1', 'demi_resample': 'C2',
            'demi_reweight': 'C3'}

  def series(run, key):
    rs = [r for r in metrics if r['run'] == run and r['split'] == 'train'
          and r[key] != '']
    return [r['step'] for r in rs], [float(r[key]) for r in rs]

  fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows),
                           squeeze=False)
  for ax, s in zip(axes.ravel(), cells):
    for method in config.methods:
      steps, est = series(s.run_name(method), 'estimate')
      ax.plot(steps, est, color=colors[method], label=METHOD_LABELS[method],
              ls='--' if method == 'demi_reweight' else '-')
    log_k = math.log(s.batch_size)
    ax.axhline(s.true_mi, color='k', lw=1, label='true MI')
    ax.axhline(log_k, color='grey', ls='--', lw=1, label='log K')
    ax.axhline(s.num_subviews * log_k, color='grey', ls=':', lw=1, label='T log K')
    ax.set_title(f'MI {s.true_mi:g}, K={s.batch_size}, T={s.num_subviews}')
    ax.set_xlabel('step')
    ax.set_ylabel('nats')
  axes.ravel()[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)

  demis = [m for m in config.methods if m != 'infonce']
  fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows),
                           squeeze=False)
  for ax, s in zip(axes.ravel(), cells):
    true_terms = demi.GaussianViews.correlated(config.dim, s.true_mi).chain_terms(
        demi.prefix_masks(config.dim, s.num_subviews))
    for method in demis:
      for t in range(s.num_subviews):
        steps, est = series(s.run_name(method), f'term_{t + 1}')
        ax.plot(steps, est, color=colors[method], lw=1,
                ls=['-', '--', '-.', ':'][t % 4],
                label=f'{METHOD_LABELS[method]} term {t + 1}')
    for v in sorted(set(np.round(true_terms, 6))):
      ax.axhline(v, color='k', lw=1)
    ax.axhline(math.log(s.batch_size), color='grey', ls='--', lw=1)
    ax.set_title(f'terms: MI {s.true_mi:g}, K={s.batch_size}, T={s.num_subviews}')
    ax.set_xlabel('step')
    ax.set_ylabel('nats (black: true term, grey: log K)')
  axes.ravel()[0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(terms_path, dpi=110)
  plt.close(fig)


# ------------------------------------------------------------------- main --

def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Trains every run of the grid (resuming), then writes the outputs."""
  for method in config.methods:
    registry.lookup(METHODS, method, 'method')
  os.makedirs(os.path.join(workdir, 'runs'), exist_ok=True)
  timings_path = os.path.join(workdir, 'timings.csv')
  timings = _load_timings(timings_path)
  runs = _runs(config)
  for i, (s, method) in enumerate(runs):
    name = s.run_name(method)
    print(f'=== run {i + 1}/{len(runs)}: {name} (true MI {s.true_mi:g}, '
          f'log K {math.log(s.batch_size):.2f})', flush=True)
    run_dir = os.path.join(workdir, 'runs', name)
    if _final_eval(run_dir).get('step') == config.num_steps:
      print(f'    complete in {run_dir}; skipped', flush=True)
      continue
    task, run_config = make_task(config, s, method)
    t0 = time.time()
    train.train(run_config, task, run_dir)
    seconds = time.time() - t0
    if name not in timings or seconds > 0.5 * timings[name]['seconds']:
      timings[name] = {'seconds': seconds,
                       'steps_per_s': config.num_steps / max(seconds, 1e-9)}
    _write_timings(timings_path, timings)

  references = {}
  for s in settings(config):
    references[s] = optimal_reference(config, s)
  metrics = _collect_metrics(config, workdir)
  _write_csv(os.path.join(workdir, 'metrics.csv'), metrics)
  rows = summarize(config, workdir, references)
  _write_csv(os.path.join(workdir, 'summary.csv'), rows)
  table = summary_markdown(rows, config)
  with open(os.path.join(workdir, 'summary.md'), 'w') as f:
    f.write(table)
  plot(config, metrics, os.path.join(workdir, 'demi.png'),
       os.path.join(workdir, 'demi_terms.png'))
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
