"""Tests of infomax_jax.graphs.infograph (masks, padding, the model, kept
epoch embeddings) and of the epoch selection of graphs.evaluation."""

import jax
import numpy as np
import pytest

from infomax_jax import graphs
from tests import graphs_fixtures as fx


@pytest.mark.slow
@pytest.mark.parametrize('bound', sorted(graphs.MASKED_BOUNDS))
def test_infograph_masking_matches_loops_and_ignores_padding(bound):
  data = fx.toy_tu_dataset()
  n_real = data.num_nodes
  # Padded batch: 4 real graphs in 6 slots, 14 real nodes in 20 rows.
  batch = graphs.batch_graphs(data, np.arange(4), num_nodes=20, num_edges=30,
                              num_graphs=6)
  scores = jax.random.normal(jax.random.PRNGKey(1), (20, 6)) * 3.0
  # Garbage on padding rows/columns must not change anything.
  scores = scores.at[n_real:].set(1e4).at[:, 4:].set(-1e4)
  pos, neg = graphs.infograph_masks(batch)
  assert int(pos.sum()) == n_real and int(neg.sum()) == n_real * 3
  value = graphs.infograph_objective(scores, batch, bound)
  expected = fx.loop_bound(scores, np.asarray(pos), np.asarray(neg), bound)
  np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
  unpadded = graphs.masked_bound(scores[:n_real, :4], pos[:n_real, :4],
                                 bound=bound)
  np.testing.assert_allclose(value, unpadded, rtol=1e-5, atol=1e-6)
  grads = jax.grad(
      lambda s: graphs.infograph_objective(s, batch, bound))(scores)
  assert np.all(np.isfinite(grads))
  assert np.all(grads[n_real:] == 0) and np.all(grads[:, 4:] == 0)


def test_infograph_steps_per_epoch_keep_a_last_batch_of_two_or_more():
  assert graphs.infograph_steps_per_epoch(188, 128) == 2      # 128 + 60
  assert graphs.infograph_steps_per_epoch(129, 128) == 1      # 1 dropped
  assert graphs.infograph_steps_per_epoch(130, 128) == 2      # 128 + 2
  assert graphs.infograph_steps_per_epoch(256, 128) == 2


def test_infograph_task_rejects_bad_batch_sizes():
  data = fx.toy_tu_dataset()
  with pytest.raises(ValueError, match='batch_size must be >= 2'):
    graphs.infograph_task(data, batch_size=1)
  with pytest.raises(ValueError, match=r'divisible by the number of blocks'):
    graphs.infograph_task(data, batch_size=6, num_blocks=4)
  with pytest.raises(ValueError, match='valid masked bounds are'):
    graphs.infograph_task(data, batch_size=4, bound='mine')


@pytest.mark.slow
def test_graph_batches_are_padding_invariant():
  data = fx.toy_tu_dataset()
  model = graphs.InfoGraph(hidden=8, num_layers=2)
  small = graphs.batch_graphs(data, [2, 0], num_nodes=5, num_edges=6,
                              num_graphs=2)
  big = graphs.batch_graphs(data, [2, 0], num_nodes=16, num_edges=25,
                            num_graphs=5)
  variables = graphs.infograph_init(data, hidden=8, num_layers=2, batch_size=5,
                                    seed=0)

  @jax.jit
  def embed_and_score(batch):
    emb = model.apply(variables, batch, method=graphs.InfoGraph.embed)
    scores, _ = model.apply(variables, batch, train=True,
                            mutable=['batch_stats'])
    return emb, scores

  emb_small, s_small = embed_and_score(small)
  emb_big, s_big = embed_and_score(big)
  # Inference embeddings and training-mode scores (masked batch statistics)
  # ignore the padding nodes, edges and graph slots.
  np.testing.assert_allclose(emb_big[:2], emb_small, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(emb_big[2:], 0.0)
  np.testing.assert_allclose(s_big[:5, :2], s_small, rtol=1e-4, atol=1e-4)
  # Sum pooling: a graph's embedding is the sum of its nodes' features.
  _, nodes = model.apply(variables, small, False, method=lambda m, b, t:
                         m.encoder(b, t))
  np.testing.assert_allclose(emb_small[0], nodes[:2].sum(0), rtol=1e-5,
                             atol=1e-5)
  with pytest.raises(ValueError, match='padded sizes'):
    graphs.batch_graphs(data, [3], num_nodes=4, num_edges=8, num_graphs=1)


# --- Epoch selection (issue 17): the (epoch, C) pair chosen on train folds.

def _epochs_of_noise(num_epochs, labels, dim, seed):
  """(E, G, dim) embeddings of pure noise (no epoch separates the classes)."""
  rng = np.random.default_rng(seed)
  return rng.normal(size=(num_epochs, labels.size, dim)).astype(np.float32)


def _outer_test_folds(labels, folds, seed):
  """The held-out rows of every outer fold (the split of the selection)."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  split = model_selection.StratifiedKFold(folds, shuffle=True,
                                          random_state=seed)
  return [test for _, test in split.split(np.zeros(labels.size), labels)]


def _brute_force_select(x, y, *, folds, inner_folds, cs, seed):
  """Explicit loops over epochs x C with cross_val_score: [(acc, e, C)]."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  outer = model_selection.StratifiedKFold(folds, shuffle=True,
                                          random_state=seed)
  out = []
  for train, test in outer.split(x[0], y):
    best = None
    for e in range(x.shape[0]):
      for c in cs:
        score = model_selection.cross_val_score(
            svm.SVC(C=c), x[e, train], y[train],
            cv=model_selection.StratifiedKFold(inner_folds)).mean()
        if best is None or score > best[0] + 1e-9:   # first best wins
          best = (score, e, c)
    _, e, c = best
    model = svm.SVC(C=c).fit(x[e, train], y[train])
    out.append((model.score(x[e, test], y[test]), e, c))
  return out


def test_selection_picks_the_epoch_that_separates_the_classes():
  y = np.repeat([0, 1], 30)
  x = _epochs_of_noise(4, y, 3, seed=0)
  x[2, :, 0] += 4.0 * (2 * y - 1)             # epoch 2 alone separates
  acc, epochs, cs = graphs.svm_cross_validation_select(
      x, y, folds=5, inner_folds=3, cs=(0.1, 1.0, 10.0), seed=0)
  assert acc.shape == (5,) and len(epochs) == len(cs) == 5
  assert sum(e == 2 for e in epochs) >= 4
  assert acc.mean() > 0.9
  assert set(cs) <= {0.1, 1.0, 10.0}


def test_selection_never_sees_the_test_fold():
  y = np.repeat([0, 1], 30)
  folds, k = 5, 1
  cv = dict(folds=folds, inner_folds=3, cs=(0.3, 3.0), seed=4)
  test = _outer_test_folds(y, folds, cv['seed'])[k]
  rng = np.random.default_rng(0)
  sign = (2 * y - 1).astype(np.float32)
  x = rng.normal(size=(2, y.size, 2)).astype(np.float32)
  # Epoch 0: a moderate signal on every row. Epoch 1: a weak one, except on
  # fold k's test rows, which are clean and far apart, so epoch 1 would win
  # if the test fold were scored; the training folds favour epoch 0.
  x[0] += 0.6 * sign[:, None]
  x[1, :, 0] += 0.3 * sign
  x[1, test] = 0.0
  x[1, test, 0] = 3.0 * sign[test]
  acc, epochs, cs = graphs.svm_cross_validation_select(x, y, **cv)
  assert epochs[k] == 0
  # Premise: scored on fold k's test rows, epoch 1 would have been chosen.
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  train = np.setdiff1d(np.arange(y.size), test)
  leaky = [max(svm.SVC(C=c).fit(x[e, train], y[train]).score(x[e, test],
                                                              y[test])
               for c in cv['cs']) for e in (0, 1)]
  assert leaky[1] > leaky[0]
  # Garbage in fold k's test rows of every epoch: same choice; of the
  # epochs not chosen: also the same accuracy.
  garbage = 1e3 * rng.normal(size=(test.size, 2)).astype(np.float32)
  for epochs_replaced in ([0, 1], [e for e in (0, 1) if e != epochs[k]]):
    x2 = x.copy()
    for e in epochs_replaced:
      x2[e, test] = garbage
    acc2, epochs2, cs2 = graphs.svm_cross_validation_select(x2, y, **cv)
    assert (epochs2[k], cs2[k]) == (epochs[k], cs[k])
    if epochs[k] not in epochs_replaced:
      assert acc2[k] == acc[k]


def test_selection_matches_a_brute_force_search():
  y = np.repeat([0, 1, 2], [14, 12, 16])
  rng = np.random.default_rng(3)
  x = _epochs_of_noise(3, y, 3, seed=2)
  for e, strength in enumerate((0.3, 1.0, 0.6)):   # every epoch half useful
    x[e] += strength * rng.normal(size=(3, 3))[y]
  cv = dict(folds=4, inner_folds=3, cs=(0.1, 1.0, 10.0), seed=7)
  acc, epochs, cs = graphs.svm_cross_validation_select(x, y, **cv)
  expected = _brute_force_select(x, y, **cv)
  assert list(zip(acc, epochs, cs)) == expected
  assert len(set(epochs)) > 1 or len(set(cs)) > 1   # not a trivial case


def test_svm_cross_validation_is_scikit_learns_nested_grid_search():
  """One epoch: the (paper's) nested CV written directly with scikit-learn:
  GridSearchCV over C on each shuffled stratified outer training split."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  y = np.repeat([0, 1], [17, 21])
  x = _epochs_of_noise(1, y, 4, seed=5)
  x[0, :, 1] += 1.2 * y
  cv = dict(folds=4, inner_folds=3, cs=(0.01, 1.0, 100.0), seed=2)
  acc, cs = graphs.svm_cross_validation(x[0], y, **cv)
  outer = model_selection.StratifiedKFold(4, shuffle=True, random_state=2)
  expected = []
  for train, test in outer.split(x[0], y):
    search = model_selection.GridSearchCV(
        svm.SVC(), {'C': list(cv['cs'])}, cv=3, scoring='accuracy')
    search.fit(x[0, train], y[train])
    expected.append((search.score(x[0, test], y[test]),
                     float(search.best_params_['C'])))
  assert list(zip(acc, cs)) == expected
  assert len(set(cs)) > 1 or len(set(acc)) > 1    # not a trivial case
  with pytest.raises(ValueError, match=r'must be \(E, G=38, d\)'):
    graphs.svm_cross_validation_select(x[0], y, **cv)


def test_embedding_epochs_are_every_kth_and_the_last():
  assert graphs.infograph_embedding_epochs(20, 1) == tuple(range(1, 21))
  assert graphs.infograph_embedding_epochs(7, 3) == (3, 6, 7)
  assert graphs.infograph_embedding_epochs(2, 5) == (2,)
  with pytest.raises(ValueError, match='embed_every_epochs must be >= 1'):
    graphs.infograph_embedding_epochs(5, 0)


@pytest.mark.slow
def test_kept_epoch_embeddings_survive_a_resume(tmp_path):
  data = fx.toy_tu_dataset()
  kw = dict(hidden=8, num_layers=2, batch_size=4, seed=3,
            checkpoint_every_epochs=1, embed_every_epochs=1, verbose=False)
  whole = graphs.train_infograph(data, epochs=3, workdir=str(tmp_path / 'a'),
                                 **kw)
  assert whole.embedding_epochs == (1, 2, 3)
  assert whole.epoch_embeddings.shape == (3, 4, 16)
  np.testing.assert_array_equal(
      whole.epoch_embeddings[-1],
      graphs.infograph_embeddings(whole.variables, data, hidden=8,
                                  num_layers=2))
  assert not np.allclose(whole.epoch_embeddings[0], whole.epoch_embeddings[2])
  # Stopped after 2 epochs, then resumed from that checkpoint to 3: epochs
  # 1-2 come from the folder, epoch 3 is trained again; the same run.
  graphs.train_infograph(data, epochs=2, workdir=str(tmp_path / 'b'), **kw)
  resumed = graphs.train_infograph(data, epochs=3,
                                   workdir=str(tmp_path / 'b'), **kw)
  assert resumed.losses == whole.losses
  np.testing.assert_allclose(resumed.epoch_embeddings, whole.epoch_embeddings,
                             rtol=1e-6, atol=1e-6)
  # A finished folder: nothing trained, every epoch read back.
  again = graphs.train_infograph(data, epochs=3, workdir=str(tmp_path / 'a'),
                                 **kw)
  np.testing.assert_array_equal(again.epoch_embeddings, whole.epoch_embeddings)
  # Without a folder: kept in memory.
  memory = graphs.train_infograph(data, epochs=3, workdir=None, **kw)
  np.testing.assert_allclose(memory.epoch_embeddings, whole.epoch_embeddings,
                             rtol=1e-6, atol=1e-6)
