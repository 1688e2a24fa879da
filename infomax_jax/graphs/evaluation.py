"""The evaluation protocols of the graph papers, on frozen embeddings.

* DGI (Velickovic et al. 2019): ``logreg_probe``, logistic regression on the
  public training nodes, repeated from fresh Glorot initialisations (50 runs
  in the paper), test accuracy of each run. It is not
  ``infomax_jax.evaluation.linear_probe``: that probe standardises the
  features and starts at zero weights, so its runs would all be the same run
  and the features not DGI's; the paper's protocol fits raw embeddings from
  random initialisations and reports the spread over them.
* InfoGraph (Sun et al. 2020): ``svm_cross_validation``, stratified k-fold
  accuracy of an RBF SVM whose C is chosen by an inner cross-validation on
  the training folds only (no test fold picks anything);
  ``svm_cross_validation_select`` chooses the training epoch the same way,
  jointly with C, from the embeddings of several epochs.
"""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infomax_jax import evaluation as evaluation_lib
from infomax_jax.graphs import layers


def logreg_probe(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *,
                 num_classes: int, num_runs: int, seed: int = 0,
                 epochs: int = 100, learning_rate: float = 0.01,
                 weight_decay: float = 0.0) -> np.ndarray:
  """DGI's evaluation: logistic regression on frozen features, repeated.

  Each run: a linear layer (Glorot-uniform W, zero b), full-batch Adam on the
  mean cross-entropy for ``epochs`` steps, then test accuracy. Runs differ in
  their initialisation only; all are one vmapped, jitted computation.

  Args:
    train_x: (n_train, d) features; train_y: (n_train,) int labels.
    test_x: (n_test, d) features; test_y: (n_test,) int labels.
    num_classes: number of classes.
    num_runs: repetitions.
    seed: the run's seed; run r starts from
      ``infomax_jax.evaluation.eval_keys(seed, 'logreg_probe', num_runs)[r]``.
    epochs: Adam steps per run.
    learning_rate: Adam step size.
    weight_decay: L2 coefficient added to the gradient (PyTorch Adam style).

  Returns:
    (num_runs,) test accuracies in [0, 1].
  """
  train_x, test_x = (jnp.asarray(a, jnp.float32) for a in (train_x, test_x))
  train_y, test_y = (jnp.asarray(a, jnp.int32) for a in (train_y, test_y))
  if (train_x.ndim != 2 or test_x.ndim != 2
      or train_x.shape[1] != test_x.shape[1]):
    raise ValueError(f'train_x and test_x must be (n, d) with one d, got '
                     f'{train_x.shape} and {test_x.shape}')
  if train_y.shape != train_x.shape[:1] or test_y.shape != test_x.shape[:1]:
    raise ValueError(f'labels must have shapes ({train_x.shape[0]},) and '
                     f'({test_x.shape[0]},), got {train_y.shape} and '
                     f'{test_y.shape}')
  d = train_x.shape[1]
  tx = optax.chain(optax.add_decayed_weights(weight_decay),
                   optax.adam(learning_rate))

  def one_run(key):
    params = {'w': layers.glorot_uniform(key, (d, num_classes)),
              'b': jnp.zeros((num_classes,))}

    def loss_fn(p):
      logits = train_x @ p['w'] + p['b']
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, train_y).mean()

    def body(carry, _):
      p, s = carry
      g = jax.grad(loss_fn)(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None,
                                  length=epochs)
    pred = jnp.argmax(test_x @ params['w'] + params['b'], axis=1)
    return jnp.mean(pred == test_y)

  keys = evaluation_lib.eval_keys(seed, 'logreg_probe', num_runs)
  return np.asarray(jax.jit(jax.vmap(one_run))(keys))


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
  accs, _, chosen = svm_cross_validation_select(
      np.asarray(embeddings)[None], labels, folds=folds,
      inner_folds=inner_folds, cs=cs, seed=seed)
  return accs, chosen


def svm_cross_validation_select(
    embeddings_by_epoch: np.ndarray, labels: np.ndarray, *, folds: int,
    inner_folds: int, cs: Sequence[float], seed: int
) -> tuple[np.ndarray, list[int], list[float]]:
  """k-fold SVM accuracy with the (epoch, C) pair chosen on the train folds.

  The paper's protocol without test-set selection: for every outer fold, each
  candidate (epoch e, C) is scored by the mean accuracy of an ``inner_folds``
  -fold stratified CV (unshuffled, as scikit-learn's ``GridSearchCV(cv=k)``)
  of ``SVC(C)`` on epoch e's embeddings of the outer
  training folds only; the best pair is refitted there and scores the held-out
  fold. Ties (to 1e-10) go to the earliest epoch, then the smallest C, in the
  given order. With one epoch this is ``svm_cross_validation``.

  Args:
    embeddings_by_epoch: (E, G, d) graph embeddings of E candidate epochs.
    labels: (G,) class ids.
    folds: outer folds (test accuracy), stratified and shuffled with ``seed``.
    inner_folds: inner folds of the (epoch, C) search (training folds only).
    cs: candidate C values.
    seed: shuffling seed of the outer split.

  Returns:
    ((folds,) accuracies, the chosen epoch index (into the E axis) of each
    fold, the chosen C of each fold).
  """
  # scikit-learn takes seconds to import; only this evaluation needs it.
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  x = np.asarray(embeddings_by_epoch)
  if x.ndim != 3 or x.shape[1] != len(labels):
    raise ValueError(f'embeddings_by_epoch must be (E, G={len(labels)}, d), '
                     f'got {x.shape}')
  outer = model_selection.StratifiedKFold(folds, shuffle=True,
                                          random_state=seed)
  inner = model_selection.StratifiedKFold(inner_folds)
  accs, epochs, chosen = [], [], []
  for train, test in outer.split(x[0], labels):
    scores = np.stack([_inner_scores(x[e, train], labels[train], cs, inner)
                       for e in range(x.shape[0])])   # (E, len(cs))
    # Rounding makes equal means exact ties, so the first pair wins.
    e, c = np.unravel_index(np.argmax(np.round(scores, 10)), scores.shape)
    model = svm.SVC(C=cs[c]).fit(x[e, train], labels[train])
    accs.append(model.score(x[e, test], labels[test]))
    epochs.append(int(e))
    chosen.append(float(cs[c]))
  return np.asarray(accs), epochs, chosen


def _inner_scores(x: np.ndarray, y: np.ndarray, cs: Sequence[float],
                  inner: Any) -> np.ndarray:
  """(len(cs),) mean inner-CV accuracy of an RBF SVM for every C."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  search = model_selection.GridSearchCV(
      svm.SVC(), {'C': list(cs)}, cv=inner, scoring='accuracy', refit=False)
  search.fit(x, y)
  return np.asarray(search.cv_results_['mean_test_score'])
