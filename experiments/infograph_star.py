r"""InfoGraph* on QM9 (Sun et al. 2020, Table 3) and InfoGraph on QM9.

The paper's protocol: a random split of QM9 into 10,000 test, 10,000
validation and 5,000 labeled training molecules, the rest unlabeled; each
target normalised by the labeled molecules' mean and std; test MAE of the
model chosen on validation. Methods (``config.methods``):

* 'supervised': the GIN encoder and regressor trained by MSE alone;
* 'infograph_star': InfoGraph* (``graphs.train_infograph_star``): plus the
  unsupervised encoder's InfoGraph bound on the labeled and unlabeled
  molecules and lambda times the MI between the two encoders' layers;
* 'infograph': unsupervised InfoGraph (``graphs.train_infograph``) on the
  pool, its frozen embeddings (and the untrained encoder's) scored by a ridge
  regression probe fitted on the labeled molecules (alpha per target on val):
  QM9 as InfoGraph's second data set beside MUTAG.

Every method regresses each target minus its atom reference (least squares
on the atom counts and a constant, fitted on the labeled molecules,
``qm9.atom_reference``; ``config.atom_reference``), normalised; MAEs are in
the CSV's units (the same on the residual). All targets are trained jointly
(one regressor with ``len(config.targets)`` outputs: one model per method
and seed instead of one per target). The seeds of InfoGraph* and the
baseline are vmapped replicas of one program.

  python -m experiments.infograph_star \
      --config=experiments/configs/infograph_star.py:cpu \
      --workdir=results/infograph_star_cpu

Writes to ``--workdir``: ``runs/<method>/`` (train.train folders, resumed),
``<method>.json`` (a finished method: per-seed, per-target test MAE in the
CSV's units; a rerun skips it), ``per_seed.csv``, ``results.csv`` and
``results.md`` (the table: per target, mean ± std over seeds of every
method, InfoGraph*'s change vs supervised, and the count of targets it
improves) and ``infograph_star_loss.png``.
"""

import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from infomax_jax import graphs
from infomax_jax import runs
from infomax_jax.graphs import infograph_star as igs
from infomax_jax.graphs import qm9

METHODS = ('supervised', 'infograph_star', 'infograph')
HEADERS = {'supervised': 'supervised', 'infograph_star': 'InfoGraph*',
           'infograph': 'InfoGraph + ridge', 'untrained': 'untrained + ridge',
           'atomref': 'atom ref. alone'}


def load(config: ml_collections.ConfigDict) -> qm9.QM9:
  """All of QM9, or the molecules of ``config.csv``."""
  if config.csv is None:
    return qm9.load_qm9(config.data_dir, verbose=True)
  return qm9.featurize(qm9.read_qm9_csv(config.csv))[0]


def make_split(dataset: qm9.QM9, config: ml_collections.ConfigDict
               ) -> dict[str, np.ndarray]:
  """The split, with 'pool' = labeled train + the unlabeled used."""
  split = qm9.qm9_split(dataset.num_graphs, seed=config.split_seed,
                        num_train=config.num_train, num_val=config.num_val,
                        num_test=config.num_test)
  unlabeled = split['unlabeled']
  if config.num_unlabeled >= 0:
    unlabeled = unlabeled[:config.num_unlabeled]
  split['pool'] = np.concatenate([split['train'], unlabeled])
  return split


def run_star(dataset, targets, split, config, workdir, semi) -> dict[str, Any]:
  """Supervised or InfoGraph*: normalised test MAE per seed and target."""
  result = igs.train_infograph_star(
      dataset, targets, split, semi=semi, seed=config.seed,
      num_seeds=config.num_seeds, hidden=config.hidden,
      num_layers=config.num_layers, batch_size=config.batch_size,
      unlabeled_batch_size=config.unlabeled_batch_size, lam=config.lam,
      bound=config.bound, readout_scale=config.readout_scale,
      learning_rate=config.learning_rate,
      num_steps=config.num_steps, log_every=config.log_every,
      eval_every=config.eval_every, workdir=workdir)
  return {'test_mae': result.test_mae.tolist(),
          'best_step': result.best_step.tolist(),
          'loss': result.losses.tolist(), 'mse': result.mse.tolist(),
          'train_s': result.train_seconds,
          'compile_s': result.compile_seconds,
          'train_cpu_s': result.train_cpu_seconds}


def run_infograph(dataset, targets, split, config, workdir) -> dict[str, Any]:
  """Unsupervised InfoGraph per seed; ridge probe of frozen embeddings."""
  pool = split['pool']
  if config.infograph_pool >= 0:
    pool = pool[:config.infograph_pool]
  arch = dict(hidden=config.hidden, num_layers=config.num_layers)
  embed = {k: igs.embedder(dataset, split[k], **arch)
           for k in ('train', 'val', 'test')}
  y = {k: targets[split[k]] for k in ('train', 'val', 'test')}
  out = {'test_mae': [], 'untrained_test_mae': [], 'loss': [], 'train_s': 0.0,
         'compile_s': 0.0, 'train_cpu_s': 0.0}
  for r in range(config.num_seeds):
    seed = config.seed + r
    result = graphs.train_infograph(
        dataset.subset(pool), batch_size=config.infograph_batch_size,
        epochs=config.infograph_epochs,
        learning_rate=config.infograph_learning_rate, seed=seed,
        bound=config.bound, workdir=os.path.join(workdir, f'seed{seed}'),
        **arch)
    untrained = graphs.infograph_init(
        dataset.subset(pool[:config.infograph_batch_size]),
        batch_size=config.infograph_batch_size, seed=seed, **arch)
    for key, variables in (('test_mae', result.variables),
                           ('untrained_test_mae', untrained)):
      x = {k: f(variables) for k, f in embed.items()}
      preds, _ = igs.ridge_probe(x['train'], y['train'],
                                 {'val': x['val'], 'test': x['test']},
                                 alphas=tuple(config.ridge_alphas),
                                 eval_y={'val': y['val']})
      out[key].append(np.abs(preds['test'] - y['test']).mean(0).tolist())
    out['loss'].append(result.losses)
    out['train_s'] += result.train_seconds
    out['compile_s'] += result.compile_seconds
    out['train_cpu_s'] += result.train_cpu_seconds
  return out


def table(config, std: np.ndarray, done: dict[str, dict],
          reference: np.ndarray = None) -> list[dict]:
  """One row per target: mean ± std over seeds (the CSV's units);
  ``reference``: the (T,) test MAE of the atom-reference baseline alone."""
  rows = []
  for j, t in enumerate(config.targets):
    name, _, unit = qm9.TARGETS[t]
    row = {'target': name, 'unit': unit}
    if reference is not None:
      row['atomref'] = f'{reference[j]:.4g}'
      row['atomref_mean'] = float(reference[j])
    cols = {m: np.array(d['test_mae'])[:, j] * std[j] for m, d in done.items()}
    if 'infograph' in done:
      cols['untrained'] = (np.array(done['infograph']['untrained_test_mae'])
                           [:, j] * std[j])
    for m, v in cols.items():
      row[f'{m}_mean'], row[f'{m}_std'] = float(v.mean()), float(v.std())
      row[m] = f'{v.mean():.4g} ± {v.std():.2g}'
    if 'supervised' in cols and 'infograph_star' in cols:
      change = cols['infograph_star'].mean() / cols['supervised'].mean() - 1
      row['star_vs_sup'] = f'{100 * change:+.1f} %'
      row['star_vs_sup_frac'] = float(change)
      # Paired by seed (a seed's two runs share phi's init and the labeled
      # batches): the per-seed relative change, mean ± std over seeds.
      paired = cols['infograph_star'] / cols['supervised'] - 1
      row['paired'] = (f'{100 * paired.mean():+.1f} ± {100 * paired.std():.1f}'
                       f' % ({int((paired < 0).sum())}/{paired.size})')
      row['paired_better'] = int((paired < 0).sum())
    rows.append(row)
  return rows


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Every method of ``config.methods`` not yet finished, then the table."""
  for m in config.methods:
    if m not in METHODS:
      raise ValueError(f'unknown method {m!r}; valid: {METHODS}')
  os.makedirs(workdir, exist_ok=True)
  t0 = time.perf_counter()
  dataset = load(config)
  split = make_split(dataset, config)
  raw = dataset.targets[:, list(config.targets)]
  reference = None
  if config.atom_reference:
    # Models regress what the atom counts do not explain (qm9.atom_reference);
    # an MAE is the same on the residual as on the target.
    baseline, _ = qm9.atom_reference(raw, qm9.composition(dataset),
                                     split['train'])
    reference = np.abs(baseline - raw)[split['test']].mean(0)
    raw = raw - baseline
  targets, _, std = qm9.normalized_targets(raw, split['train'])
  if config.readout_scale <= 0:     # the mean atom count of the labeled
    config.readout_scale = float(np.diff(dataset.node_offsets)[
        split['train']].mean())
  print(f'regressor input: sum pool / {config.readout_scale:.4g}; atom '
        f'reference: {bool(config.atom_reference)}', flush=True)
  print(f'QM9: {dataset.num_graphs} molecules ({time.perf_counter() - t0:.1f}'
        f' s to load); split sizes ' + ', '.join(
            f'{k} {v.size}' for k, v in split.items()), flush=True)
  done = {}
  for method in config.methods:
    path = os.path.join(workdir, f'{method}.json')
    if os.path.exists(path):
      with open(path) as f:
        done[method] = json.load(f)
      continue
    t1 = time.perf_counter()
    folder = os.path.join(workdir, 'runs', method)
    if method == 'infograph':
      out = run_infograph(dataset, targets, split, config, folder)
    else:
      out = run_star(dataset, targets, split, config, folder,
                     semi=method == 'infograph_star')
    out['wall_s'] = time.perf_counter() - t1
    runs.write_text(path, json.dumps(out))
    done[method] = out
  rows = table(config, std, done, reference)
  runs.write_csv(os.path.join(workdir, 'results.csv'), list(rows[0]), rows)
  per_seed = [{'method': m, 'seed': config.seed + r,
               **{qm9.TARGETS[t][0]: d['test_mae'][r][j] * std[j]
                  for j, t in enumerate(config.targets)}}
              for m, d in done.items() for r in range(len(d['test_mae']))]
  runs.write_csv(os.path.join(workdir, 'per_seed.csv'), list(per_seed[0]),
                 per_seed)
  text = markdown(config, rows, done)
  runs.write_text(os.path.join(workdir, 'results.md'), text)
  plot(done, os.path.join(workdir, 'infograph_star_loss.png'))
  print(text, flush=True)
  return rows


def markdown(config, rows: list[dict], done: dict[str, dict]) -> str:
  """Caption, the table, the improvement count and the times."""
  methods = [m for m in (*METHODS, 'untrained')
             if m in done or (m == 'untrained' and 'infograph' in done)]
  if 'atomref' in rows[0]:
    methods.append('atomref')
  columns = ['target', 'unit', *methods]
  headers = ['target', 'unit', *(HEADERS[m] for m in methods)]
  if 'star_vs_sup' in rows[0]:
    columns += ['star_vs_sup', 'paired']
    headers += ['InfoGraph* vs sup.', 'paired by seed (seeds lower)']
  lines = [
      f'QM9, test MAE in the CSV\'s units (mean ± std over '
      f'{config.num_seeds} seeds; split seed {config.split_seed}: '
      f'{config.num_train} labeled / {config.num_val} val / {config.num_test}'
      f' test, {"all" if config.num_unlabeled < 0 else config.num_unlabeled}'
      f' unlabeled). GIN {config.num_layers} x {config.hidden}, all targets '
      f'jointly, batch {config.batch_size} (+{config.unlabeled_batch_size} '
      f'pool), Adam {config.learning_rate}, {config.num_steps} steps, model '
      f'chosen per target on val every {config.eval_every} steps; lambda '
      f'{config.lam}, {config.bound}; regressor input = sum pool / '
      f'{config.readout_scale:.3g}; '
      + ('targets minus their atom-reference fit (least squares on the atom '
         'counts, labeled molecules), every method. ' if config.atom_reference
         else 'no atom reference. ') + 'InfoGraph + ridge: '
      f'{config.infograph_epochs} epochs on '
      f'{"the pool" if config.infograph_pool < 0 else config.infograph_pool}'
      f' molecules, ridge on the labeled, alpha per target on val.', '',
      runs.markdown_table(rows, columns, headers=headers), '']
  if 'star_vs_sup' in rows[0]:
    change = np.array([r['star_vs_sup_frac'] for r in rows])
    better = change < 0
    lines.append(
        f'InfoGraph* has a lower mean test MAE than supervised on '
        f'{int(better.sum())} of {len(rows)} targets (mean change '
        f'{100 * change.mean():+.1f} %; over the improved targets '
        f'{100 * change[better].mean() if better.any() else 0:+.1f} %); '
        f'paired by seed, lower in '
        f'{sum(r["paired_better"] for r in rows)} of '
        f'{len(rows) * config.num_seeds} (seed, target) pairs.')
  devices = f'{jax.devices()[0].platform.upper()} x {jax.device_count()}'
  lines.append('Times (' + devices + '): ' + '; '.join(
      f'{HEADERS[m]} {d["wall_s"]:.0f} s wall (train {d["train_s"]:.0f} s + '
      f'compile {d["compile_s"]:.0f} s, CPU {d["train_cpu_s"]:.0f} s)'
      for m, d in done.items()) + '.')
  return '\n'.join(lines) + '\n'


def plot(done: dict[str, dict], path: str) -> str:
  """Training MSE (log scale) of both methods, and InfoGraph*'s total loss;
  one line per seed."""
  fig, axes = runs.plots.panels(2)
  for m, color in (('supervised', 'C0'), ('infograph_star', 'C3')):
    if m in done:
      for r, curve in enumerate(np.array(done[m]['mse']).T):
        axes[0].plot(curve, lw=1, color=color,
                     label=HEADERS[m] if r == 0 else None)
  if 'infograph_star' in done:
    axes[1].plot(np.array(done['infograph_star']['loss']), lw=1, color='C3')
  for ax in axes:
    ax.set_yscale('log')
  runs.plots.labels(axes[0], 'logged chunk', 'MSE (normalised)', legend=True,
                    fontsize=7)
  runs.plots.labels(axes[1], 'logged chunk', 'InfoGraph* loss')
  return runs.plots.save(fig, path)

if __name__ == '__main__':
  runs.main(run, __file__)
