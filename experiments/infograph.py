r"""InfoGraph on MUTAG (Sun et al. 2020, Table 2), graph-level infomax.

For every seed: train InfoGraph (GIN encoder with batch norm, per-layer sum
pooling concatenated, node-vs-graph JSD across each batch of graphs), freeze
the graph embeddings, and score them by ``config.folds``-fold stratified
cross-validation of an RBF SVM whose C is chosen by an inner CV on the
training folds only (``graphs.svm_cross_validation``). The same encoder at
initialisation is scored the same way, for reference.

Training (``graphs.train_infograph``) is data parallel over every device: the
graphs of each mini-batch are dealt round-robin into one padded block per
device (``graphs.infograph_task``); ``batch_size`` must be a multiple of the
device count.

  INFOMAX_DATA_DIR=../shared/data python -m experiments.infograph \
      --config=experiments/configs/infograph.py --workdir=runs/infograph

Writes to ``--workdir`` (``graphs.protocol`` describes the files):
``runs/<dataset>_seed<seed>/`` (the resumable training folders),
``metrics.jsonl`` (tag ``run='MUTAG/seed0'``; split 'train': the mean loss of
every epoch; split 'test': the CV accuracies, %), ``runs.csv``, ``folds.csv``
(every fold's accuracy and C), ``embeddings/``, ``results.csv`` and
``results.md`` (mean ± std over seeds, the mean fold std, the untrained
encoder, times, the paper's number) and ``infograph_loss.png``. Seeds already
in runs.csv are skipped, so an interrupted run resumes there.
"""

from typing import Any

import ml_collections
import numpy as np

from infomax_jax import graphs
from infomax_jax import runs

# Sun et al. 2020, Table 2 (mean +- std of 10-fold accuracy, %).
PAPER = {'MUTAG': '89.01 ± 1.13'}
# Above the results table; {field} is the config field.
CAPTION = ('InfoGraph ({bound}; GIN {num_layers} x {hidden}, batch '
           '{batch_size}, {epochs} epochs, Adam {learning_rate}): '
           '{folds}-fold SVM accuracy (%), C chosen by inner '
           '{inner_folds}-fold CV on the training folds. Mean ± std over '
           'seeds (each with its own training and fold split); "fold std" '
           'is the mean within-seed std over folds.')
# Encoder -> prefix of its runs.csv columns.
ENCODERS = {'trained': 'acc', 'untrained': 'untrained'}


def evaluate(dataset: graphs.TUDataset, result: graphs.InfoGraphResult,
             seed: int, config: ml_collections.ConfigDict) -> graphs.Evaluation:
  """k-fold SVM accuracy of the trained (and the untrained) encoder."""
  arch = dict(hidden=config.hidden, num_layers=config.num_layers)
  variables = {'trained': result.variables}
  if config.evaluate_untrained:
    variables['untrained'] = graphs.infograph_init(
        dataset, batch_size=config.batch_size, seed=seed, **arch)
  row, details, embeddings = {}, [], {}
  for encoder, v in variables.items():
    embeddings[encoder] = graphs.infograph_embeddings(v, dataset, **arch)
    acc, cs = graphs.svm_cross_validation(
        embeddings[encoder], dataset.graph_labels, folds=config.folds,
        inner_folds=config.inner_folds, cs=tuple(config.svm_cs), seed=seed)
    row[f'{ENCODERS[encoder]}_mean'] = round(100 * float(acc.mean()), 2)
    row[f'{ENCODERS[encoder]}_fold_std'] = round(100 * float(acc.std()), 2)
    details += [{'encoder': encoder, 'fold': i,
                 'accuracy': round(float(a), 4), 'C': c}
                for i, (a, c) in enumerate(zip(acc, cs))]
  return graphs.Evaluation(
      row=row, details=details,
      arrays={'embeddings': embeddings['trained'],
              'labels': dataset.graph_labels})


def summarize(rows: list[dict], details: list[dict]) -> dict[str, Any]:
  """Mean ± std over seeds of the per-seed k-fold accuracies."""
  acc = np.array([r['acc_mean'] for r in rows])
  out = {'folds': sum(d['encoder'] == 'trained' for d in details) // len(rows),
         'acc_mean': round(float(acc.mean()), 2),
         'acc_std': round(float(acc.std()), 2),
         'accuracy': f'{acc.mean():.2f} ± {acc.std():.2f}',
         'mean_fold_std': round(float(np.mean(
             [r['acc_fold_std'] for r in rows])), 2)}
  untrained = np.array([r['untrained_mean'] for r in rows
                        if r['untrained_mean'] != ''])
  if untrained.size:
    out.update(untrained_mean=round(float(untrained.mean()), 2),
               untrained_std=round(float(untrained.std()), 2),
               untrained=f'{untrained.mean():.2f} ± {untrained.std():.2f}')
  return out


PROTOCOL = graphs.Protocol(
    name='infograph', load=graphs.load_tu_dataset,
    train=graphs.train_infograph,
    settings=('hidden', 'num_layers', 'batch_size', 'epochs', 'learning_rate',
              'bound'),
    options=('checkpoint_every_epochs',),
    evaluate=evaluate,
    run_fields=tuple(f'{prefix}_{stat}' for prefix in ENCODERS.values()
                     for stat in ('mean', 'fold_std')),
    detail_file='folds.csv',
    detail_fields=('encoder', 'fold', 'accuracy', 'C'),
    summarize=summarize,
    columns=(('accuracy', 'InfoGraph', None),
             ('mean_fold_std', 'fold std', '.2f'),
             ('untrained', 'untrained encoder', None)),
    caption=CAPTION, paper=PAPER)
run = PROTOCOL.run   # (config, workdir, mesh=None) -> the summaries


if __name__ == '__main__':
  runs.main(run, __file__)
