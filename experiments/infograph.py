r"""InfoGraph on MUTAG (Sun et al. 2020, Table 2), graph-level infomax.

For every seed: train InfoGraph (GIN encoder with batch norm, per-layer sum
pooling concatenated, node-vs-graph JSD across each batch of graphs), freeze
the graph embeddings, and score them by ``config.folds``-fold stratified
cross-validation of an RBF SVM whose C is chosen by an inner CV on the
training folds only (no test fold is ever used to pick anything). The same
encoder at initialisation is scored the same way, for reference.

Training goes through ``infomax_jax.train.train`` (``graphs.train_infograph``),
data parallel over every device with no code change: the graphs of each
mini-batch are dealt round-robin into one block per device, every block padded
to fixed node and edge counts (one compilation), built on device from the
replicated data set and sharded by ``train.train``. Message passing stays
within a device; batch-norm statistics and the node-vs-graph objective span
the whole batch, as on one device. ``batch_size`` must be a multiple of the
device count.

  INFOMAX_DATA_DIR=../shared/data python -m experiments.infograph \
      --config=experiments/configs/infograph.py --workdir=/tmp/infograph

Writes to ``--workdir``:
  runs/seed<seed>/  the ``train.train`` folder of each seed (checkpoints,
                    metrics.jsonl): an interrupted training resumes there.
  metrics.jsonl     mean training loss per epoch: {seed, epoch, loss}.
  runs.csv          one row per seed: CV accuracy (mean, fold std) of the
                    trained and the untrained encoder, times.
  folds.csv         every fold's accuracy.
  embeddings/       the frozen graph embeddings of each seed (.npz).
  results.csv / results.md   mean +- std over seeds, the mean fold std, wall
                    time, and the paper's number.
  infograph_loss.png  training loss curves.
Seeds already in runs.csv are skipped, so an interrupted run resumes there.
"""

import json
import os
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np
from sklearn import model_selection
from sklearn import svm

from experiments import csvio
from infomax_jax import graphs

# Sun et al. 2020, Table 2 (mean +- std of 10-fold accuracy, %).
PAPER = {'MUTAG': '89.01 ± 1.13'}

RUN_FIELDS = ('seed', 'acc_mean', 'acc_fold_std', 'untrained_mean',
              'untrained_fold_std', 'final_loss', 'compile_s', 'train_s',
              'train_cpu_s', 'eval_s')
FOLD_FIELDS = ('seed', 'encoder', 'fold', 'accuracy', 'C')
RESULT_FIELDS = ('dataset', 'seeds', 'folds', 'acc_mean', 'acc_std',
                 'mean_fold_std', 'untrained_mean', 'untrained_std',
                 'train_s_per_seed', 'train_cpu_s_per_seed', 'total_s',
                 'paper')


def svm_cross_validation(embeddings: np.ndarray, labels: np.ndarray, *,
                         folds: int, inner_folds: int, cs: Sequence[float],
                         seed: int) -> tuple[np.ndarray, list[float]]:
  """Stratified k-fold accuracy of an RBF SVM with C chosen on the train folds.

  Args:
    embeddings: (G, d) graph embeddings.
    labels: (G,) class ids.
    folds: outer folds (test accuracy).
    inner_folds: inner folds of the C search (training folds only).
    cs: candidate C values.
    seed: shuffling seed of the outer split.

  Returns:
    ((folds,) accuracies, the chosen C of each fold).
  """
  outer = model_selection.StratifiedKFold(folds, shuffle=True,
                                          random_state=seed)
  accs, chosen = [], []
  for train, test in outer.split(embeddings, labels):
    search = model_selection.GridSearchCV(
        svm.SVC(), {'C': list(cs)}, cv=inner_folds, scoring='accuracy')
    search.fit(embeddings[train], labels[train])
    accs.append(search.score(embeddings[test], labels[test]))
    chosen.append(float(search.best_params_['C']))
  return np.asarray(accs), chosen


def run_one(dataset: graphs.TUDataset, seed: int,
            config: ml_collections.ConfigDict, workdir: str,
            mesh=None) -> dict[str, Any]:
  """Trains and evaluates InfoGraph with one seed; returns its runs.csv row."""
  arch = dict(hidden=config.hidden, num_layers=config.num_layers)
  cv = dict(folds=config.folds, inner_folds=config.inner_folds,
            cs=tuple(config.svm_cs), seed=seed)
  fold_rows = []
  untrained = np.full(1, np.nan)
  t_eval = 0.0
  if config.evaluate_untrained:
    t0 = time.perf_counter()
    init = graphs.infograph_init(dataset, batch_size=config.batch_size,
                                 seed=seed, **arch)
    emb0 = graphs.infograph_embeddings(init, dataset, **arch)
    untrained, cs0 = svm_cross_validation(emb0, dataset.graph_labels, **cv)
    fold_rows += [{'seed': seed, 'encoder': 'untrained', 'fold': i,
                   'accuracy': f'{a:.4f}', 'C': c}
                  for i, (a, c) in enumerate(zip(untrained, cs0))]
    t_eval += time.perf_counter() - t0
    logging.info('seed %d: untrained encoder, %d-fold SVM accuracy %.2f ± '
                 '%.2f %%', seed, config.folds, 100 * untrained.mean(),
                 100 * untrained.std())

  train_settings = dict(batch_size=config.batch_size, epochs=config.epochs,
                        learning_rate=config.learning_rate, seed=seed,
                        bound=config.bound, **arch)
  run_dir = csvio.run_dir(os.path.join(workdir, 'runs', f'seed{seed}'),
                          dict(dataset=dataset.name, **train_settings))
  print(f'seed {seed}: training in {run_dir}', flush=True)
  result = graphs.train_infograph(
      dataset, workdir=run_dir, mesh=mesh,
      checkpoint_every_epochs=config.checkpoint_every_epochs, **train_settings)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'a') as f:
    for epoch, loss in enumerate(result.losses):
      f.write(json.dumps({'seed': seed, 'epoch': epoch, 'loss': loss}) + '\n')
  t0 = time.perf_counter()
  emb = graphs.infograph_embeddings(result.variables, dataset, **arch)
  os.makedirs(os.path.join(workdir, 'embeddings'), exist_ok=True)
  np.savez_compressed(os.path.join(workdir, 'embeddings', f'seed{seed}.npz'),
                      embeddings=emb, labels=dataset.graph_labels)
  acc, cs = svm_cross_validation(emb, dataset.graph_labels, **cv)
  t_eval += time.perf_counter() - t0
  fold_rows += [{'seed': seed, 'encoder': 'trained', 'fold': i,
                 'accuracy': f'{a:.4f}', 'C': c}
                for i, (a, c) in enumerate(zip(acc, cs))]
  csvio.append_csv(os.path.join(workdir, 'folds.csv'), FOLD_FIELDS, fold_rows)
  logging.info('seed %d: trained in %.1f s (+%.1f s compile); %d-fold SVM '
               'accuracy %.2f ± %.2f %%', seed, result.train_seconds,
               result.compile_seconds, config.folds, 100 * acc.mean(),
               100 * acc.std())
  return {'seed': seed, 'acc_mean': f'{100 * acc.mean():.2f}',
          'acc_fold_std': f'{100 * acc.std():.2f}',
          'untrained_mean': f'{100 * untrained.mean():.2f}',
          'untrained_fold_std': f'{100 * untrained.std():.2f}',
          'final_loss': f'{result.losses[-1]:.5f}',
          'compile_s': f'{result.compile_seconds:.1f}',
          'train_s': f'{result.train_seconds:.1f}',
          'train_cpu_s': f'{result.train_cpu_seconds:.1f}',
          'eval_s': f'{t_eval:.1f}'}


def summarize(workdir: str,
              config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Mean ± std over seeds of the per-seed k-fold accuracies."""
  rows = csvio.read_csv(os.path.join(workdir, 'runs.csv'))
  acc = np.array([float(r['acc_mean']) for r in rows])
  untrained = np.array([float(r['untrained_mean']) for r in rows])
  train_s = np.array([float(r['train_s']) + float(r['compile_s'])
                      for r in rows])
  total_s = train_s + np.array([float(r['eval_s']) for r in rows])
  cpu_s = [float(r['train_cpu_s']) for r in rows if r.get('train_cpu_s')]
  return {
      'dataset': config.dataset, 'seeds': len(rows), 'folds': config.folds,
      'acc_mean': f'{acc.mean():.2f}', 'acc_std': f'{acc.std():.2f}',
      'mean_fold_std':
          f'{np.mean([float(r["acc_fold_std"]) for r in rows]):.2f}',
      'untrained_mean': f'{np.nanmean(untrained):.2f}' if np.any(
          np.isfinite(untrained)) else 'n/a',
      'untrained_std': f'{np.nanstd(untrained):.2f}' if np.any(
          np.isfinite(untrained)) else '',
      'train_s_per_seed': f'{train_s.mean():.0f}',
      'train_cpu_s_per_seed': f'{np.mean(cpu_s):.1f}' if cpu_s else 'n/a',
      'total_s': f'{total_s.sum():.0f}',
      'paper': PAPER.get(config.dataset, '')}


def results_markdown(summary: dict[str, Any],
                     config: ml_collections.ConfigDict) -> str:
  s = summary
  return '\n'.join([
      f'InfoGraph ({config.bound}; GIN {config.num_layers} x {config.hidden}, '
      f'batch {config.batch_size}, {config.epochs} epochs, Adam '
      f'{config.learning_rate}): {config.folds}-fold SVM accuracy (%), C '
      f'chosen by inner {config.inner_folds}-fold CV on the training folds. '
      f'Mean ± std over {s["seeds"]} seeds (each with its own training and '
      f'fold split); "fold std" is the mean within-seed std over folds. Times '
      f'on {jax.devices()[0].platform.upper()} ({jax.device_count()} '
      f'device(s)): wall s of training incl. compile, CPU s of the training '
      f'call (all threads, compile included), total wall s incl. evaluation.',
      '',
      '| data set | InfoGraph | fold std | untrained encoder | seeds | '
      'wall s / seed | CPU s / seed | total wall s | paper |',
      '|---|---|---|---|---|---|---|---|---|',
      f'| {s["dataset"]} | {s["acc_mean"]} ± {s["acc_std"]} | '
      f'{s["mean_fold_std"]} | {s["untrained_mean"]}'
      f'{" ± " + s["untrained_std"] if s["untrained_std"] else ""} | '
      f'{s["seeds"]} | {s["train_s_per_seed"]} | '
      f'{s["train_cpu_s_per_seed"]} | {s["total_s"]} | '
      f'{s["paper"]} |', ''])


def plot_losses(workdir: str, path: str) -> None:
  """Mean training loss per epoch, one line per seed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  curves: dict[int, list[float]] = {}
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      rec = json.loads(line)
      curves.setdefault(rec['seed'], []).append(rec['loss'])
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for seed, losses in sorted(curves.items()):
    ax.plot(losses, label=f'seed {seed}', lw=1)
  ax.set_xlabel('epoch')
  ax.set_ylabel('loss (negative bound)')
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _drop_unfinished(workdir: str, done: set[int]) -> None:
  """Removes rows of seeds that an interruption left out of runs.csv."""
  path = os.path.join(workdir, 'folds.csv')
  rows = csvio.read_csv(path)
  kept = [r for r in rows if int(r['seed']) in done]
  if len(kept) != len(rows):
    csvio.write_csv(path, FOLD_FIELDS, kept)
  path = os.path.join(workdir, 'metrics.jsonl')
  if os.path.exists(path):
    with open(path) as f:
      lines = f.readlines()
    kept = [l for l in lines if json.loads(l)['seed'] in done]
    if len(kept) != len(lines):
      with open(path, 'w') as f:
        f.writelines(kept)


def run(config: ml_collections.ConfigDict, workdir: str,
        mesh=None) -> dict[str, Any]:
  """Runs every seed not yet in ``workdir/runs.csv``; returns the summary.

  ``mesh``: the devices to train on (default: all, ``parallel.make_mesh``).
  """
  os.makedirs(workdir, exist_ok=True)
  runs_path = os.path.join(workdir, 'runs.csv')
  done = {int(r['seed']) for r in csvio.read_csv(runs_path)}
  _drop_unfinished(workdir, done)
  dataset = graphs.load_tu_dataset(config.dataset, config.data_dir)
  logging.info('%s: %d graphs (%s per class), %d nodes, %d node labels, %d '
               'directed edges', dataset.name, dataset.num_graphs,
               np.bincount(dataset.graph_labels).tolist(), dataset.num_nodes,
               dataset.node_features.shape[1], dataset.edges.shape[0])
  start = time.perf_counter()
  for seed in config.seeds:
    if seed in done:
      logging.info('seed %d: already in %s, skipped', seed, runs_path)
      continue
    csvio.append_csv(runs_path, RUN_FIELDS,
                     [run_one(dataset, seed, config, workdir, mesh)])
  logging.info('all seeds done in %.1f s', time.perf_counter() - start)
  summary = summarize(workdir, config)
  csvio.write_csv(os.path.join(workdir, 'results.csv'), RESULT_FIELDS, [summary])
  table = results_markdown(summary, config)
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(table)
  plot_losses(workdir, os.path.join(workdir, 'infograph_loss.png'))
  print(table, flush=True)
  return summary


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required.')
  csvio.quiet_orbax()
  logging.info('JAX devices: %s', jax.devices())
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  # Flags are defined here, not at import, so that the experiment modules can
  # be imported together (tests, tests/multidevice_checks.py).
  _CONFIG = config_flags.DEFINE_config_file(
      'config',
      os.path.join(os.path.dirname(__file__), 'configs', 'infograph.py'),
      'InfoGraph config (ml_collections); append :quick or :tiny for smaller '
      'runs.',
      lock_config=True)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
  app.run(main)
