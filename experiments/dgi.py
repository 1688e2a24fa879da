r"""Deep Graph Infomax on Cora and CiteSeer (Velickovic et al. 2019, Table 2).

For every data set and seed: train DGI (one-layer GCN, PReLU, 512 units,
Adam 1e-3, early stopping on the training loss with patience 20, the
best-loss parameters kept), freeze the node embeddings, and fit
``config.probe_runs`` logistic regressions on the 140 / 120 public training
nodes; report test accuracy on the 1000 test nodes.

Training goes through ``infomax_jax.train.train`` (``graphs.train_dgi``), data
parallel over every device with no code change. DGI sees the whole graph in
every step, so there is no sample axis to split; the batch of a step is the
node set instead: the nodes are padded to a multiple of the device count and
the rows of X and of the normalised adjacency are cut into one block per
device (with the corruption permutation and the node mask, sharded by
``train.train``). Each device computes X W, the real and the corrupted GCN
outputs and the discriminator scores of its own nodes; XLA all-gathers X W
for the neighbour sums and all-reduces the summary, the objective and the
gradients. The graph is replicated in every device's memory (it is small:
Cora's sparse features are 49k entries), so this splits the compute, not the
graph. On one device it is the plain full-batch computation. Early stopping
runs inside the jitted steps (``graphs.dgi_task``) and ends the loop through
``Task.stop``.

  INFOMAX_DATA_DIR=../shared/data python -m experiments.dgi \
      --config=experiments/configs/dgi.py --workdir=/tmp/dgi

Writes to ``--workdir``:
  runs/<dataset>_seed<seed>/  the ``train.train`` folder of each run
                       (checkpoints, metrics.jsonl per chunk): an interrupted
                       training resumes from its last checkpoint.
  metrics.jsonl        training loss per epoch: {dataset, seed, epoch, loss}.
  runs.csv             one row per (dataset, seed): epochs, best epoch, times,
                       probe accuracy mean/std/min/max.
  probe_accuracies.csv every probe run's test accuracy.
  embeddings/          the frozen embeddings of each run (.npz).
  results.csv / results.md   per data set: mean +- std of the accuracy over
                       all seeds x probe runs, the spread of the seed means,
                       wall time, and the paper's number.
  dgi_loss.png         training loss curves.
Runs already in runs.csv are skipped, so an interrupted run resumes there.
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

from experiments import csvio
from infomax_jax import graphs

# Velickovic et al. 2019, Table 2 (mean +- std of test accuracy, %).
PAPER = {'cora': '82.3 ± 0.6', 'citeseer': '71.8 ± 0.7'}

RUN_FIELDS = ('dataset', 'seed', 'epochs', 'best_epoch', 'best_loss',
              'compile_s', 'train_s', 'train_cpu_s', 'probe_s', 'acc_mean',
              'acc_std', 'acc_min', 'acc_max')
RESULT_FIELDS = ('dataset', 'seeds', 'probe_runs', 'acc_mean', 'acc_std',
                 'seed_mean_std', 'mean_epochs', 'train_s_per_run',
                 'train_cpu_s_per_run', 'total_s', 'paper')


def run_one(data: graphs.Planetoid, seed: int,
            config: ml_collections.ConfigDict, workdir: str,
            mesh=None) -> dict[str, Any]:
  """Trains and evaluates DGI on one data set with one seed; returns its row."""
  tag = f'{data.name}/seed {seed}'
  train_settings = dict(
      hidden=config.hidden, learning_rate=config.learning_rate,
      patience=config.patience, max_epochs=config.max_epochs, seed=seed,
      bound=config.bound)
  run_dir = csvio.run_dir(
      os.path.join(workdir, 'runs', f'{data.name}_seed{seed}'),
      dict(dataset=data.name, log_every=config.log_every, **train_settings))
  print(f'{tag}: training in {run_dir}', flush=True)
  result = graphs.train_dgi(
      data, workdir=run_dir, mesh=mesh, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every, **train_settings)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'a') as f:
    for epoch, loss in enumerate(result.losses):
      f.write(json.dumps({'dataset': data.name, 'seed': seed, 'epoch': epoch,
                          'loss': loss}) + '\n')

  emb = graphs.dgi_embeddings(result.params, data, config.hidden)
  os.makedirs(os.path.join(workdir, 'embeddings'), exist_ok=True)
  np.savez_compressed(
      os.path.join(workdir, 'embeddings', f'{data.name}_seed{seed}.npz'),
      embeddings=emb, best_epoch=result.best_epoch)
  t0 = time.perf_counter()
  acc = graphs.logreg_probe(
      emb[data.train_index], data.labels[data.train_index],
      emb[data.test_index], data.labels[data.test_index],
      num_classes=data.num_classes, num_runs=config.probe_runs,
      seed=seed, epochs=config.probe_epochs,
      learning_rate=config.probe_learning_rate,
      weight_decay=config.probe_weight_decay)
  probe_s = time.perf_counter() - t0
  csvio.append_csv(os.path.join(workdir, 'probe_accuracies.csv'),
              ('dataset', 'seed', 'run', 'accuracy'),
              [{'dataset': data.name, 'seed': seed, 'run': i,
                'accuracy': f'{a:.4f}'} for i, a in enumerate(acc)])
  row = {
      'dataset': data.name, 'seed': seed, 'epochs': len(result.losses),
      'best_epoch': result.best_epoch,
      'best_loss': f'{min(result.losses):.5f}',
      'compile_s': f'{result.compile_seconds:.1f}',
      'train_s': f'{result.train_seconds:.1f}',
      'train_cpu_s': f'{result.train_cpu_seconds:.1f}',
      'probe_s': f'{probe_s:.1f}',
      'acc_mean': f'{100 * acc.mean():.2f}',
      'acc_std': f'{100 * acc.std():.2f}',
      'acc_min': f'{100 * acc.min():.2f}', 'acc_max': f'{100 * acc.max():.2f}'}
  logging.info('%s: %d epochs (best %d) in %.1f s; probe accuracy %s ± %s %%',
               tag, row['epochs'], row['best_epoch'], result.train_seconds,
               row['acc_mean'], row['acc_std'])
  return row


def summarize(workdir: str, datasets: Sequence[str]) -> list[dict[str, Any]]:
  """Per data set: accuracy over all (seed, probe run) pairs and seed spread."""
  runs = csvio.read_csv(os.path.join(workdir, 'runs.csv'))
  probes = csvio.read_csv(os.path.join(workdir, 'probe_accuracies.csv'))
  out = []
  for name in datasets:
    rows = [r for r in runs if r['dataset'] == name]
    if not rows:
      continue
    seeds = {r['seed'] for r in rows}
    acc = np.array([float(p['accuracy']) for p in probes
                    if p['dataset'] == name and p['seed'] in seeds])
    seed_means = np.array([float(r['acc_mean']) for r in rows])
    train_s = np.array([float(r['train_s']) + float(r['compile_s'])
                        for r in rows])
    total_s = train_s + np.array([float(r['probe_s']) for r in rows])
    cpu_s = [float(r['train_cpu_s']) for r in rows if r.get('train_cpu_s')]
    out.append({
        'dataset': name, 'seeds': len(rows), 'probe_runs': acc.size,
        'acc_mean': f'{100 * acc.mean():.2f}',
        'acc_std': f'{100 * acc.std():.2f}',
        'seed_mean_std': f'{seed_means.std():.2f}',
        'mean_epochs': f'{np.mean([int(r["epochs"]) for r in rows]):.0f}',
        'train_s_per_run': f'{train_s.mean():.0f}',
        'train_cpu_s_per_run': f'{np.mean(cpu_s):.0f}' if cpu_s else 'n/a',
        'total_s': f'{total_s.sum():.0f}', 'paper': PAPER.get(name, '')})
  return out


def results_markdown(summary: Sequence[dict[str, Any]],
                     config: ml_collections.ConfigDict) -> str:
  lines = [
      f'DGI ({config.bound}, {config.hidden} units, Adam '
      f'{config.learning_rate}, patience {config.patience}): linear-probe '
      f'test accuracy (%) on the public split, mean ± std over seeds × '
      f'{config.probe_runs} probe runs; '
      f'"seed spread" is the std of the per-seed means. Times on '
      f'{jax.devices()[0].platform.upper()} ({jax.device_count()} '
      f'device(s)), per run: wall s of training incl. compile, and CPU s of '
      f'the training call (all threads, compile included).',
      '',
      '| data set | accuracy | seed spread | seeds × probes | epochs (mean) '
      '| wall s / run | CPU s / run | total wall s | paper |',
      '|---|---|---|---|---|---|---|---|---|']
  for r in summary:
    lines.append(
        f'| {r["dataset"]} | {r["acc_mean"]} ± {r["acc_std"]} | '
        f'{r["seed_mean_std"]} | {r["seeds"]} × '
        f'{int(r["probe_runs"]) // int(r["seeds"])} | {r["mean_epochs"]} | '
        f'{r["train_s_per_run"]} | {r["train_cpu_s_per_run"]} | '
        f'{r["total_s"]} | {r["paper"]} |')
  return '\n'.join(lines) + '\n'


def plot_losses(workdir: str, path: str) -> None:
  """Training loss vs epoch, one line per (data set, seed)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  curves: dict[tuple[str, int], list[float]] = {}
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      rec = json.loads(line)
      curves.setdefault((rec['dataset'], rec['seed']), []).append(rec['loss'])
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for (name, seed), losses in sorted(curves.items()):
    ax.plot(losses, label=f'{name} seed {seed}', lw=1)
  ax.set_xlabel('epoch')
  ax.set_ylabel('loss (-JSD)')
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _drop_unfinished(workdir: str, done: set[tuple[str, int]]) -> None:
  """Removes rows of runs that an interruption left out of runs.csv."""
  path = os.path.join(workdir, 'probe_accuracies.csv')
  rows = csvio.read_csv(path)
  kept = [r for r in rows if (r['dataset'], int(r['seed'])) in done]
  if len(kept) != len(rows):
    csvio.write_csv(path, ('dataset', 'seed', 'run', 'accuracy'), kept)
  path = os.path.join(workdir, 'metrics.jsonl')
  if os.path.exists(path):
    with open(path) as f:
      lines = f.readlines()
    kept = [l for l in lines
            if (json.loads(l)['dataset'], json.loads(l)['seed']) in done]
    if len(kept) != len(lines):
      with open(path, 'w') as f:
        f.writelines(kept)


def run(config: ml_collections.ConfigDict, workdir: str,
        mesh=None) -> list[dict[str, Any]]:
  """Runs the (data set, seed) pairs not in runs.csv; returns the summary.

  ``mesh``: the devices to train on (default: all, ``parallel.make_mesh``).
  """
  os.makedirs(workdir, exist_ok=True)
  runs_path = os.path.join(workdir, 'runs.csv')
  done = {(r['dataset'], int(r['seed'])) for r in csvio.read_csv(runs_path)}
  _drop_unfinished(workdir, done)
  start = time.perf_counter()
  for name in config.datasets:
    data = graphs.load_planetoid(name, config.data_dir)
    logging.info('%s: %d nodes, %d features, %d classes, %d edges, split '
                 '%d/%d/%d', name, data.num_nodes, data.num_features,
                 data.num_classes, data.edges.shape[0], data.train_index.size,
                 data.val_index.size, data.test_index.size)
    for seed in config.seeds:
      if (name, seed) in done:
        logging.info('%s/seed %d: already in %s, skipped', name, seed,
                     runs_path)
        continue
      csvio.append_csv(runs_path, RUN_FIELDS,
                       [run_one(data, seed, config, workdir, mesh)])
  logging.info('all runs done in %.1f s', time.perf_counter() - start)
  summary = summarize(workdir, config.datasets)
  csvio.write_csv(os.path.join(workdir, 'results.csv'), RESULT_FIELDS, summary)
  table = results_markdown(summary, config)
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(table)
  plot_losses(workdir, os.path.join(workdir, 'dgi_loss.png'))
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
      os.path.join(os.path.dirname(__file__), 'configs', 'dgi.py'),
      'DGI config (ml_collections); append :quick or :tiny for smaller runs.',
      lock_config=True)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
  app.run(main)
