r"""Deep Graph Infomax on Cora and CiteSeer (Velickovic et al. 2019, Table 2).

For every data set and seed: train DGI (one-layer GCN, PReLU, 512 units,
Adam 1e-3, early stopping on the training loss with patience 20, the
best-loss parameters kept), freeze the node embeddings, and fit
``config.probe_runs`` logistic regressions from fresh initialisations on the
140 / 120 public training nodes; report test accuracy on the 1000 test nodes.

Training (``graphs.train_dgi``) is data parallel over every device: the batch
of a step is the node set, padded to a multiple of the device count, the rows
of X and Â cut into one block per device (``graphs.dgi_task``).

  INFOMAX_DATA_DIR=../shared/data python -m experiments.dgi \
      --config=experiments/configs/dgi.py --workdir=runs/dgi

Writes to ``--workdir`` (``graphs.protocol`` describes the files):
``runs/<dataset>_seed<seed>/`` (the resumable training folders),
``metrics.jsonl`` (tag ``run='cora/seed0'``; split 'train': the loss after
every epoch; split 'test': the probe accuracies, %), ``runs.csv``,
``probe_accuracies.csv`` (every probe run), ``embeddings/``, ``results.csv``
and ``results.md`` (per data set: accuracy over all seeds x probe runs, the
spread of the seed means, times, the paper's number) and ``dgi_loss.png``.
Pairs already in runs.csv are skipped, so an interrupted run resumes there.
"""

from typing import Any

import ml_collections
import numpy as np

from infomax_jax import graphs
from infomax_jax import runs

# Velickovic et al. 2019, Table 2 (mean +- std of test accuracy, %).
PAPER = {'cora': '82.3 ± 0.6', 'citeseer': '71.8 ± 0.7'}
# Above the results table; {field} is the config field.
CAPTION = ('DGI ({bound}, {hidden} units, Adam {learning_rate}, patience '
           '{patience}): linear-probe test accuracy (%) on the public '
           'split, mean ± std over seeds × {probe_runs} probe runs; "seed '
           'spread" is the std of the per-seed means, "seed ci95" the Student-t '
           '95 % half-width of their mean.')


def evaluate(data: graphs.Planetoid, result: graphs.DGIResult, seed: int,
             config: ml_collections.ConfigDict) -> graphs.Evaluation:
  """DGI's protocol: repeated logistic regression on the frozen embeddings."""
  emb = graphs.dgi_embeddings(result.params, data, config.hidden)
  train, test = data.train_index, data.test_index
  acc = graphs.logreg_probe(
      emb[train], data.labels[train], emb[test], data.labels[test],
      num_classes=data.num_classes, num_runs=config.probe_runs, seed=seed,
      epochs=config.probe_epochs, learning_rate=config.probe_learning_rate,
      weight_decay=config.probe_weight_decay)
  percent = 100 * acc
  return graphs.Evaluation(
      row={'best_epoch': result.best_epoch,
           'best_loss': round(min(result.losses), 5),
           **{f'acc_{k}': round(float(getattr(np, k)(percent)), 2)
              for k in ('mean', 'std', 'min', 'max')}},
      details=[{'run': i, 'accuracy': round(float(a), 4)}
               for i, a in enumerate(acc)],
      arrays={'embeddings': emb, 'best_epoch': result.best_epoch})


def summarize(rows: list[dict], details: list[dict]) -> dict[str, Any]:
  """Accuracy over all (seed, probe run) pairs and the spread of seed means."""
  acc = 100 * np.array([d['accuracy'] for d in details])
  return {'probe_runs': acc.size // len(rows),
          'acc_mean': round(float(acc.mean()), 2),
          'acc_std': round(float(acc.std()), 2),
          'accuracy': f'{acc.mean():.2f} ± {acc.std():.2f}',
          'seed_mean_std': round(float(np.std([r['acc_mean'] for r in rows])),
                                 2),
          # Student-t 95 % half-width of the mean over seeds (0 for one seed).
          'seed_mean_ci95': round(runs.replicas.interval(
              [r['acc_mean'] for r in rows])[1], 2),
          'mean_epochs': float(np.mean([r['epochs'] for r in rows]))}


PROTOCOL = graphs.Protocol(
    name='dgi', load=graphs.load_planetoid, train=graphs.train_dgi,
    settings=('hidden', 'learning_rate', 'patience', 'max_epochs', 'bound',
              'log_every'),
    options=('checkpoint_every',),
    evaluate=evaluate,
    run_fields=('best_epoch', 'best_loss', 'acc_mean', 'acc_std', 'acc_min',
                'acc_max'),
    detail_file='probe_accuracies.csv', detail_fields=('run', 'accuracy'),
    summarize=summarize,
    columns=(('accuracy', 'accuracy', None),
             ('seed_mean_std', 'seed spread', '.2f'),
             ('seed_mean_ci95', 'seed ci95', '.2f'),
             ('probe_runs', 'probes / seed', None),
             ('mean_epochs', 'epochs (mean)', '.0f')),
    caption=CAPTION, paper=PAPER)
run = PROTOCOL.run   # (config, workdir, mesh=None) -> the summaries


if __name__ == '__main__':
  runs.main(run, __file__)
