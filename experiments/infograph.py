r"""InfoGraph on MUTAG (Sun et al. 2020, Table 2), graph-level infomax.

For every seed: train InfoGraph (GIN encoder with batch norm, per-layer sum
pooling concatenated, node-vs-graph JSD across each batch of graphs), keeping
the frozen graph embeddings of every ``config.select_every_epochs``-th epoch
(and the last), and score them by ``config.folds``-fold stratified
cross-validation of an RBF SVM. ``config.epoch_selection``:

* ``'validation'`` (default, the paper's protocol done honestly): in every
  outer fold the (epoch, C) pair with the best inner ``inner_folds``-fold CV
  accuracy on the training folds is refitted there and scores the held-out
  fold (``graphs.svm_cross_validation_select``); no test fold chooses
  anything (the paper chose the epoch on the test folds).
* ``'last'``: the final epoch's embeddings, C chosen by the inner CV
  (``graphs.svm_cross_validation``).

The same encoder at initialisation is scored as ``'last'``, for reference.

Training (``graphs.train_infograph``) is data parallel over every device: the
graphs of each mini-batch are dealt round-robin into one padded block per
device (``graphs.infograph_task``); ``batch_size`` must be a multiple of the
device count. The embeddings are kept by ``train.train``'s evaluation hook,
run every ``select_every_epochs`` epochs, in the run folder
(``epoch_embeddings/``), so a resumed training keeps those of the epochs
before its checkpoint.

  INFOMAX_DATA_DIR=../shared/data python -m experiments.infograph \
      --config=experiments/configs/infograph.py --workdir=runs/infograph

Writes to ``--workdir`` (``graphs.protocol`` describes the files):
``runs/<dataset>_seed<seed>/`` (the resumable training folders),
``metrics.jsonl`` (tag ``run='MUTAG/seed0'``; split 'train': the mean loss of
every epoch; split 'test': the CV accuracies, %, and the median chosen
epoch), ``runs.csv``, ``folds.csv`` (every fold's accuracy, C and epoch),
``embeddings/`` (final and per-epoch embeddings, labels), ``results.csv`` and
``results.md`` (mean ± std over seeds, the mean fold std, the chosen epochs,
the untrained encoder, times, the paper's number) and ``infograph_loss.png``.
Seeds already in runs.csv are skipped, so an interrupted run resumes there.
"""

from typing import Any

import ml_collections
import numpy as np

from infomax_jax import graphs
from infomax_jax import runs

# Sun et al. 2020, Table 2 (mean +- std of 10-fold accuracy, %).
PAPER = {'MUTAG': '89.01 ± 1.13'}
# How the epoch of the trained encoder's embeddings is chosen.
EPOCH_SELECTIONS = ('validation', 'last')
# Above the results table; {field} is the config field.
CAPTION = ('InfoGraph ({bound}; GIN {num_layers} x {hidden}, batch '
           '{batch_size}, {epochs} epochs, Adam {learning_rate}): '
           '{folds}-fold SVM accuracy (%), epoch selection '
           '"{epoch_selection}" ("validation": per fold, the epoch (kept every '
           '{select_every_epochs} epoch(s)) and C with the best inner '
           '{inner_folds}-fold CV accuracy on the training folds; "last": the '
           'final epoch, C by that inner CV). Mean ± std over seeds (each with '
           'its own training and fold split); "fold std" is the mean '
           'within-seed std over folds; chosen epochs over all folds of all '
           'seeds (median, range, and epoch:folds counts). The untrained '
           'encoder: C by the inner CV.')
# Encoder -> prefix of its runs.csv columns.
ENCODERS = {'trained': 'acc', 'untrained': 'untrained'}


def check_epoch_selection(name: str) -> str:
  """``name`` if it is one of ``EPOCH_SELECTIONS``, else a ValueError."""
  if name not in EPOCH_SELECTIONS:
    raise ValueError(f'unknown epoch_selection {name!r}; valid values are: '
                     f'{", ".join(map(repr, EPOCH_SELECTIONS))}')
  return name


def train(dataset: graphs.TUDataset, *, select_every_epochs: int,
          **kwargs) -> graphs.InfoGraphResult:
  """``graphs.train_infograph``, keeping the embeddings of every
  ``select_every_epochs``-th epoch (the selection's candidates)."""
  return graphs.train_infograph(dataset, embed_every_epochs=select_every_epochs,
                                **kwargs)


def score_trained(result: graphs.InfoGraphResult, labels: np.ndarray,
                  config: ml_collections.ConfigDict, seed: int
                  ) -> tuple[np.ndarray, list[float], list[int]]:
  """(fold accuracies, chosen Cs, chosen epochs) of the trained encoder."""
  cv = dict(folds=config.folds, inner_folds=config.inner_folds,
            cs=tuple(config.svm_cs), seed=seed)
  epochs = result.embedding_epochs
  if check_epoch_selection(config.epoch_selection) == 'validation':
    acc, picked, cs = graphs.svm_cross_validation_select(
        result.epoch_embeddings, labels, **cv)
    return acc, cs, [epochs[i] for i in picked]
  acc, cs = graphs.svm_cross_validation(result.epoch_embeddings[-1], labels,
                                        **cv)
  return acc, cs, [epochs[-1]] * len(acc)


def evaluate(dataset: graphs.TUDataset, result: graphs.InfoGraphResult,
             seed: int, config: ml_collections.ConfigDict) -> graphs.Evaluation:
  """k-fold SVM accuracy of the trained (and the untrained) encoder."""
  labels = dataset.graph_labels
  scores = {'trained': score_trained(result, labels, config, seed)}
  if config.evaluate_untrained:
    arch = dict(hidden=config.hidden, num_layers=config.num_layers)
    untrained = graphs.infograph_embeddings(graphs.infograph_init(
        dataset, batch_size=config.batch_size, seed=seed, **arch), dataset,
                                            **arch)
    acc, cs = graphs.svm_cross_validation(
        untrained, labels, folds=config.folds, inner_folds=config.inner_folds,
        cs=tuple(config.svm_cs), seed=seed)
    scores['untrained'] = (acc, cs, [0] * len(acc))
  row, details = {}, []
  for encoder, (acc, cs, epochs) in scores.items():
    row[f'{ENCODERS[encoder]}_mean'] = round(100 * float(acc.mean()), 2)
    row[f'{ENCODERS[encoder]}_fold_std'] = round(100 * float(acc.std()), 2)
    details += [{'encoder': encoder, 'fold': i, 'accuracy': round(float(a), 4),
                 'C': c, 'epoch': e}
                for i, (a, c, e) in enumerate(zip(acc, cs, epochs))]
  row['epoch_median'] = float(np.median(scores['trained'][2]))
  return graphs.Evaluation(
      row=row, details=details,
      arrays={'embeddings': result.epoch_embeddings[-1],
              'epoch_embeddings': result.epoch_embeddings,
              'epochs': np.asarray(result.embedding_epochs),
              'labels': labels})


def epoch_summary(epochs: list[int]) -> dict[str, Any]:
  """The chosen epochs of all folds: median, range and a histogram."""
  values, counts = np.unique(epochs, return_counts=True)
  return {'epoch_median': float(np.median(epochs)),
          'epoch_min': int(values[0]), 'epoch_max': int(values[-1]),
          'epochs_chosen': (f'{np.median(epochs):g} ({values[0]}–'
                            f'{values[-1]})'),
          'epoch_counts': ' '.join(f'{v}:{c}' for v, c in zip(values, counts))}


def summarize(rows: list[dict], details: list[dict]) -> dict[str, Any]:
  """Mean ± std over seeds of the per-seed k-fold accuracies."""
  acc = np.array([r['acc_mean'] for r in rows])
  trained = [d for d in details if d['encoder'] == 'trained']
  out = {'folds': len(trained) // len(rows),
         'acc_mean': round(float(acc.mean()), 2),
         'acc_std': round(float(acc.std()), 2),
         'accuracy': f'{acc.mean():.2f} ± {acc.std():.2f}',
         'mean_fold_std': round(float(np.mean(
             [r['acc_fold_std'] for r in rows])), 2),
         **epoch_summary([d['epoch'] for d in trained])}
  untrained = np.array([r['untrained_mean'] for r in rows
                        if r['untrained_mean'] != ''])
  if untrained.size:
    out.update(untrained_mean=round(float(untrained.mean()), 2),
               untrained_std=round(float(untrained.std()), 2),
               untrained=f'{untrained.mean():.2f} ± {untrained.std():.2f}')
  return out


PROTOCOL = graphs.Protocol(
    name='infograph', load=graphs.load_tu_dataset, train=train,
    # select_every_epochs is a setting: a folder trained without keeping
    # those epochs' embeddings is retrained, not resumed.
    settings=('hidden', 'num_layers', 'batch_size', 'epochs', 'learning_rate',
              'bound', 'select_every_epochs'),
    options=('checkpoint_every_epochs',),
    evaluate=evaluate,
    run_fields=(*(f'{prefix}_{stat}' for prefix in ENCODERS.values()
                  for stat in ('mean', 'fold_std')), 'epoch_median'),
    detail_file='folds.csv',
    detail_fields=('encoder', 'fold', 'accuracy', 'C', 'epoch'),
    summarize=summarize,
    columns=(('accuracy', 'InfoGraph', None),
             ('mean_fold_std', 'fold std', '.2f'),
             ('epochs_chosen', 'chosen epoch: median (range)', None),
             ('epoch_counts', 'chosen epochs (epoch:folds)', None),
             ('untrained', 'untrained encoder', None)),
    caption=CAPTION, paper=PAPER)


def run(config: ml_collections.ConfigDict, workdir: str,
        mesh: Any = None) -> list[dict[str, Any]]:
  """``PROTOCOL.run``, refusing an unknown ``epoch_selection`` before training.

  Returns:
    The summaries of ``summarize``, one per data set.
  """
  check_epoch_selection(config.epoch_selection)
  return PROTOCOL.run(config, workdir, mesh)


if __name__ == '__main__':
  runs.main(run, __file__)
