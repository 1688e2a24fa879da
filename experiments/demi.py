r"""DEMI vs InfoNCE on correlated Gaussians whose MI is far above log K.

For every true MI, batch size K and number of subviews T of the config, trains
InfoNCE (one critic on all of x) and DEMI (T critics, one per chain-rule term)
with oracle, importance-resampled or importance-reweighted negatives
(``infomax_jax.demi.chain_objective``), each through ``infomax_jax.train``.

  python -m experiments.demi --config=experiments/configs/demi.py \
      --workdir=/tmp/demi

Writes to ``--workdir``:
  runs/<run>/       each run's metrics.jsonl, timing.json and checkpoints (a
                    rerun resumes; a finished run is only restored).
  metrics.csv       every run's train and eval records: run, method, true_mi,
                    K, T, step, split, estimate, term_1..term_T, ess_2..ess_T.
  summary.csv / summary.md  one row per (setting, method): the final held-out
                    estimate beside the true MI, log K, the closed-form
                    chain-rule terms, the same method with the analytic
                    optimal critics, and the issue's criterion.
  demi.png          estimate vs step per (true MI, K, T) panel.
  demi_terms.png    each chain-rule term vs step against its true value.
"""

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import demi
from infomax_jax import evaluation
from infomax_jax import registry
from infomax_jax import runs
from infomax_jax import train

# The config fields that make two trainings of one (setting, method) the same
# run, and those a rerun may change (how long, how often to evaluate and save).
RUN_FIELDS = ('seed', 'dim', 'critic', 'hidden', 'embed_dim', 'optimizer',
              'learning_rate', 'log_every')
SCHEDULE = ('num_steps', 'eval_every', 'checkpoint_every')
STYLES = {'infonce': ('C0', '-'), 'demi_oracle': ('C1', '-'),
          'demi_resample': ('C2', '-'), 'demi_reweight': ('C3', '--')}
COLUMNS = {'true_mi': 'true MI', 'K': 'K', 'log_K': 'log K', 'T': 'T',
           'method': 'method', 'estimate': 'estimate',
           'optimal_critic': 'optimal critic', 'terms': 'terms',
           'optimal_terms': 'optimal critic terms', 'true_terms': 'true terms',
           'ess': 'ESS', 'criterion': 'criterion'}


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
  """Every (true MI, K, T) of the config's grid, in panel order."""
  return [Setting(float(mi), int(k), int(t)) for mi in config.true_mi
          for k in config.batch_sizes for t in config.num_subviews]


def chain(config, setting: Setting, method: str):
  """(model, masks, sample) of one run: the Gaussian views, the method's subviews."""
  model = demi.GaussianViews.correlated(config.dim, setting.true_mi)
  masks = demi.method_masks(method, demi.prefix_masks(config.dim, setting.num_subviews))
  return model, masks, model.batch_sampler(setting.batch_size)


def make_task(config, setting: Setting, method: str) -> train.Task:
  """One pair critic per term, trained by ``method``; evaluated on fixed batches."""
  model, masks, sample = chain(config, setting, method)
  embed = {'embed_dim': config.embed_dim} if config.critic == 'separable' else {}
  critic = demi.make_pair_critic(config.critic, hidden=tuple(config.hidden), **embed)
  estimate, loss = demi.chain_objective(
      lambda params, t, x, y: critic.apply(params[t], x, y), masks, method,
      oracle_samplers=model.oracle_samplers(masks))
  mean = demi.batch_mean(estimate, sample)
  keys = evaluation.eval_keys(config.seed, 'demi', config.eval_batches)

  def init(key):
    x0 = jnp.zeros((1, config.dim))
    return [critic.init(k, x0, x0) for k in jax.random.split(key, len(masks))], ()

  return train.Task(init=init, sample=sample, loss=loss,
                    evaluate=lambda params, aux, step: mean(params, (), keys))


def optimal_critic(config, setting: Setting, method: str) -> dict[str, float]:
  """``method`` with the analytic optimal critics, over ``optimal_batches`` batches.

  With oracle negatives it is the best a trained critic reaches in expectation
  at this K; with resampled negatives its gap to the oracle is the bias of the
  importance-resampling approximation itself (no critic error).
  """
  model, masks, sample = chain(config, setting, method)
  fns = model.optimal_critics(masks)
  estimate, _ = demi.chain_objective(
      lambda _, t, x, y: fns[t](x, y), masks, method,
      oracle_samplers=model.oracle_samplers(masks))
  keys = evaluation.eval_keys(config.seed, 'optimal_critic', config.optimal_batches)
  return runs.to_python(demi.batch_mean(estimate, sample)(None, (), keys))


def summary_row(config, setting: Setting, method: str, final: dict) -> dict:
  """The final evaluation record ``final`` of a run beside its references."""
  model, masks, _ = chain(config, setting, method)
  optimal = optimal_critic(config, setting, method)
  terms = lambda r: ' + '.join(f'{r[f"term_{t}"]:.2f}' for t in range(1, len(masks) + 1))
  return {'true_mi': setting.true_mi, 'K': setting.batch_size,
          'log_K': math.log(setting.batch_size), 'T': setting.num_subviews,
          'method': method, 'estimate': final['estimate'],
          'optimal_critic': optimal['estimate'], 'terms': terms(final),
          'optimal_terms': terms(optimal),
          'true_terms': ' + '.join(f'{v:.2f}' for v in model.chain_terms(masks)),
          'ess': ' / '.join(f'{final[f"ess_{t}"]:.1f}'
                            for t in range(2, len(masks) + 1) if f'ess_{t}' in final)}


def criterion(row: dict, infonce: float | None) -> str:
  """The issue's check of a DEMI row where true MI >= 2 log K: DEMI > InfoNCE
  + 1 nat, DEMI > log K and DEMI < true MI ('' where it does not apply)."""
  if row['method'] == 'infonce' or infonce is None or row['true_mi'] < 2 * row['log_K']:
    return ''
  v = row['estimate']
  return 'pass' if infonce + 1.0 < v < row['true_mi'] and v > row['log_K'] else 'FAIL'


def plot(config, workdir: str, path: str, terms: bool) -> str:
  """Estimates (or, with ``terms``, each chain-rule term) vs step, one panel per setting."""
  cells = settings(config)
  fig, axes = runs.plots.panels(len(cells), rows=len(config.true_mi), width=4.2,
                                height=3.3)
  for ax, s in zip(axes, cells):
    log_k = math.log(s.batch_size)
    for method in config.methods:
      if terms and method == 'infonce':
        continue
      records = runs.read_metrics(os.path.join(workdir, 'runs', s.run_name(method)),
                                  'train')
      color, style = STYLES[method]
      label = demi.METHOD_LABELS[method]
      for t in range(1, s.num_subviews + 1) if terms else (0,):
        ax.plot(*runs.series(records, f'term_{t}' if t else 'estimate'),
                ['-', '--', '-.', ':'][t % 4] if t else style, color=color,
                lw=1, label=f'{label} term {t}' if t else label)
    if terms:
      true_terms = demi.GaussianViews.correlated(config.dim, s.true_mi).chain_terms(
          demi.prefix_masks(config.dim, s.num_subviews))
      for v in sorted(set(np.round(true_terms, 6))):
        ax.axhline(v, color='k', lw=1)
    else:
      ax.axhline(s.true_mi, color='k', lw=1, label='true MI')
      ax.axhline(s.num_subviews * log_k, color='grey', ls=':', lw=1, label='T log K')
    ax.axhline(log_k, color='grey', ls='--', lw=1, label='log K')
    ax.set_title(f'{"terms: " if terms else ""}MI {s.true_mi:g}, K={s.batch_size}, '
                 f'T={s.num_subviews}')
    runs.plots.labels(ax, 'step', 'nats (black: true term)' if terms else 'nats')
  axes[0].legend(fontsize=6)
  return runs.plots.save(fig, path, dpi=110)


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Trains every run of the grid (resuming), then writes the outputs."""
  for method in config.methods:
    registry.lookup(demi.METHODS, method, 'method')
  cells = [(s, m) for s in settings(config) for m in config.methods]
  rows, records = [], []
  for i, (s, method) in enumerate(cells):
    name = s.run_name(method)
    run_dir = os.path.join(workdir, 'runs', name)
    if not any(r['run'] == name for r in records):   # InfoNCE: once per (MI, K)
      print(f'=== {i + 1}/{len(cells)}: {name} (log K {math.log(s.batch_size):.2f})',
            flush=True)
      # The run's own fields only: train pins them, a grid may grow around it.
      pinned = {'run': name, 'batch_size': s.batch_size,
                **{f: config[f] for f in RUN_FIELDS}}
      train.train(runs.override(ml_collections.ConfigDict(pinned),
                                **{f: config[f] for f in SCHEDULE}),
                  make_task(config, s, method), runs.run_dir(run_dir, pinned))
      records += [{'run': name, 'method': method, 'true_mi': s.true_mi,
                   'K': s.batch_size, 'T': 1 if method == 'infonce' else s.num_subviews,
                   **r} for r in runs.read_metrics(run_dir)]
    rows.append(summary_row(config, s, method, runs.read_metrics(run_dir, 'eval')[-1]))
  infonce = {(r['true_mi'], r['K']): r['estimate'] for r in rows
             if r['method'] == 'infonce'}
  for r in rows:
    r['criterion'] = criterion(r, infonce.get((r['true_mi'], r['K'])))

  max_t = max(config.num_subviews)
  runs.write_csv(os.path.join(workdir, 'metrics.csv'),
                 ['run', 'method', 'true_mi', 'K', 'T', 'step', 'split', 'estimate']
                 + [f'term_{t}' for t in range(1, max_t + 1)]
                 + [f'ess_{t}' for t in range(2, max_t + 1)], records)
  runs.write_csv(os.path.join(workdir, 'summary.csv'), list(COLUMNS), rows)
  table = runs.markdown_table(
      rows, list(COLUMNS), headers=list(COLUMNS.values()),
      formats={'true_mi': '.2f', 'log_K': '.2f', 'estimate': '.2f',
               'optimal_critic': '.2f', 'method': demi.METHOD_LABELS.get})
  table += (
      f'\nEstimates in nats: held-out mean over {config.eval_batches} fresh '
      f'batches after {config.num_steps} steps. "optimal critic": the same method '
      'with the analytic log density ratios, mean over '
      f'{config.optimal_batches} batches. Terms: I(x^(1); y) + I(x^(2); y | '
      'x^(1)) + ...; ESS: mean effective sample size of the importance weights '
      'of each conditional term (out of K - 1 candidates). Criterion (only where '
      'true MI >= 2 log K): DEMI > InfoNCE + 1 nat, DEMI > log K and DEMI < '
      'true MI.\n')
  runs.write_text(os.path.join(workdir, 'summary.md'), table)
  plot(config, workdir, os.path.join(workdir, 'demi.png'), terms=False)
  plot(config, workdir, os.path.join(workdir, 'demi_terms.png'), terms=True)
  print(table, flush=True)
  return rows


if __name__ == '__main__':
  runs.main(run, __file__)
