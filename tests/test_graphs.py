"""Tests of infomax_jax.graphs: loaders, sparse ops, layers, masked bounds.

Tests on the real Planetoid / MUTAG files run when INFOMAX_DATA_DIR is set
(CI sets it) and fail if the files are missing there; they skip only when the
variable is unset. Everything else uses small synthetic graphs.
"""

import collections
import functools
import math
import os
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import sparse

from infomax_jax import bounds
from infomax_jax import graphs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUND_FNS = {'jsd': bounds.jsd, 'infonce': bounds.infonce, 'dv': bounds.dv,
             'nwj': bounds.nwj}


def _real_data_dir() -> str:
  data_dir = os.environ.get(graphs.DATA_DIR_ENV)
  if not data_dir:
    pytest.skip(f'{graphs.DATA_DIR_ENV} is unset: real-data test skipped')
  return data_dir


def _sp(z):
  return math.log1p(math.exp(z))


# ------------------------------------------------------------ masked bounds --

@pytest.mark.parametrize('bound', sorted(BOUND_FNS))
def test_masked_bound_with_identity_mask_equals_diagonal_bound(bound):
  scores = jax.random.normal(jax.random.PRNGKey(0), (6, 6)) * 2.0
  eye = jnp.eye(6, dtype=bool)
  np.testing.assert_allclose(graphs.masked_bound(scores, eye, bound=bound),
                             BOUND_FNS[bound](scores), rtol=1e-5, atol=1e-6)
  # Positives on a permuted diagonal: same as the bound on permuted columns.
  perm = np.array([3, 0, 5, 1, 4, 2])
  mask = jnp.asarray(np.eye(6, dtype=bool)[:, perm])
  np.testing.assert_allclose(graphs.masked_bound(scores, mask, bound=bound),
                             BOUND_FNS[bound](scores[:, np.argsort(perm)]),
                             rtol=1e-5, atol=1e-6)


def test_masked_bound_hand_computed_values():
  # Rectangular: positives (0, 0) and (1, 2); the other four entries negative.
  scores = jnp.array([[2.0, 0.0, -1.0], [1.0, 3.0, 0.5]])
  pos = jnp.array([[True, False, False], [False, False, True]])
  p, n = [2.0, 0.5], [0.0, -1.0, 1.0, 3.0]
  expected = {
      'jsd': -(_sp(-2.0) + _sp(-0.5)) / 2 - sum(_sp(v) for v in n) / 4,
      'dv': 1.25 - math.log(sum(math.exp(v) for v in n) / 4),
      'nwj': 1.25 - sum(math.exp(v - 1.0) for v in n) / 4,
      'infonce': ((math.log(3) + 2.0 - math.log(math.exp(2) + 1 + math.exp(-1)))
                  + (math.log(3) + 0.5 - math.log(math.exp(0.5) + math.exp(1)
                                                  + math.exp(3)))) / 2,
  }
  del p
  for name, value in expected.items():
    np.testing.assert_allclose(graphs.masked_bound(scores, pos, bound=name),
                               value, rtol=1e-6, err_msg=name)


def _loop_bound(scores, pos, neg, bound):
  """Reference: explicit Python loops over the pairs (float64)."""
  s = np.asarray(scores, np.float64)
  p_idx, n_idx = np.argwhere(pos), np.argwhere(neg)
  ep = [s[i, j] for i, j in p_idx]
  en = [s[i, j] for i, j in n_idx]
  if bound == 'jsd':
    return -np.mean([_sp(-v) for v in ep]) - np.mean([_sp(v) for v in en])
  if bound == 'dv':
    return np.mean(ep) - math.log(np.mean(np.exp(en)))
  if bound == 'nwj':
    return np.mean(ep) - np.mean(np.exp(np.array(en) - 1.0))
  terms = []
  for i, j in p_idx:
    negs = [s[i, k] for k in range(s.shape[1]) if neg[i, k]]
    terms.append(math.log(1 + len(negs)) + s[i, j]
                 - math.log(math.exp(s[i, j]) + sum(math.exp(v) for v in negs)))
  return np.mean(terms)


def _toy_tu_dataset(sizes=(3, 4, 2, 5), num_labels=3,
                    seed=0) -> graphs.TUDataset:
  """Path graphs of the given sizes with random node labels."""
  rng = np.random.default_rng(seed)
  offsets = np.concatenate([[0], np.cumsum(sizes)])
  edges = []
  for g, size in enumerate(sizes):
    for k in range(size - 1):
      a, b = offsets[g] + k, offsets[g] + k + 1
      edges += [(a, b), (b, a)]
  n = offsets[-1]
  node_graph = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
  return graphs.TUDataset(
      name='toy',
      node_features=np.eye(num_labels, dtype=np.float32)[
          rng.integers(0, num_labels, n)],
      edges=np.array(edges, np.int32), node_graph=node_graph,
      graph_labels=np.arange(len(sizes), dtype=np.int32) % 2,
      label_values=np.array([-1, 1]))


@pytest.mark.parametrize('bound', sorted(graphs.MASKED_BOUNDS))
def test_infograph_masking_matches_loops_and_ignores_padding(bound):
  data = _toy_tu_dataset()
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
  expected = _loop_bound(scores, np.asarray(pos), np.asarray(neg), bound)
  np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
  unpadded = graphs.masked_bound(scores[:n_real, :4], pos[:n_real, :4],
                                 bound=bound)
  np.testing.assert_allclose(value, unpadded, rtol=1e-5, atol=1e-6)
  grads = jax.grad(
      lambda s: graphs.infograph_objective(s, batch, bound))(scores)
  assert np.all(np.isfinite(grads))
  assert np.all(grads[n_real:] == 0) and np.all(grads[:, 4:] == 0)


def test_masked_bound_jit_with_traced_masks():
  scores = jax.random.normal(jax.random.PRNGKey(2), (5, 5))
  fn = jax.jit(lambda s, m: graphs.masked_bound(s, m, bound='infonce'))
  np.testing.assert_allclose(fn(scores, jnp.eye(5, dtype=bool)),
                             bounds.infonce(scores), rtol=1e-5)


def test_masked_bound_rejects_bad_input():
  s = jnp.zeros((3, 4))
  eye = jnp.eye(3, 4, dtype=bool)
  with pytest.raises(ValueError,
                     match=r'shape of scores \(3, 4\), got \(3, 3\)'):
    graphs.masked_bound(s, jnp.eye(3, dtype=bool))
  with pytest.raises(TypeError, match='must be boolean, got dtype float32'):
    graphs.masked_bound(s, eye.astype(jnp.float32))
  with pytest.raises(ValueError, match='overlap'):
    graphs.masked_bound(s, eye, eye)
  with pytest.raises(ValueError, match='at least one positive'):
    graphs.masked_bound(s, jnp.zeros((3, 4), bool))
  with pytest.raises(ValueError, match=r'shape \(R, C\)'):
    graphs.masked_bound(jnp.zeros(3), jnp.zeros(3, bool))
  with pytest.raises(ValueError, match='valid masked bounds are: dv, infonce'):
    graphs.masked_bound(s, eye, bound='mine')


def test_dgi_objective_is_minus_twice_bce():
  pos, neg = jax.random.normal(jax.random.PRNGKey(3), (2, 50)) * 2.0
  logits = jnp.concatenate([pos, neg])
  labels = jnp.concatenate([jnp.ones(50), jnp.zeros(50)])
  bce = optax.sigmoid_binary_cross_entropy(logits, labels).mean()
  np.testing.assert_allclose(graphs.dgi_objective(pos, neg, 'jsd'), -2 * bce,
                             rtol=1e-5)
  # InfoNCE: every real node against all corrupted ones.
  expected = np.mean(math.log(51) + pos - jnp.logaddexp(
      pos, jax.nn.logsumexp(neg)))
  np.testing.assert_allclose(graphs.dgi_objective(pos, neg, 'infonce'),
                             expected, rtol=1e-5)


# ------------------------------------------------- sparse ops and layers --

def _small_graph():
  edges = graphs.undirected_edges(
      np.array([[0, 1], [1, 0], [1, 2], [2, 3], [3, 3], [0, 2], [5, 4]]), 7)
  return edges, 7   # node 6 isolated; (3, 3) self-loop dropped


def _dense_norm_adj(edges, n):
  a = np.zeros((n, n))
  a[edges[:, 0], edges[:, 1]] = a[edges[:, 1], edges[:, 0]] = 1.0
  a += np.eye(n)
  d = a.sum(1)
  return a / np.sqrt(np.outer(d, d)), d


def test_undirected_edges_and_normalized_adjacency():
  edges, n = _small_graph()
  np.testing.assert_array_equal(edges, [[0, 1], [0, 2], [1, 2], [2, 3], [4, 5]])
  adj = graphs.normalized_adjacency(edges, n)
  assert adj.nnz == 2 * len(edges) + n
  dense, degree = _dense_norm_adj(edges, n)
  np.testing.assert_allclose(adj.to_dense(), dense, rtol=1e-6)
  row_sums = np.asarray(graphs.spmm(adj, jnp.ones(n)))
  np.testing.assert_allclose(row_sums, dense.sum(1), rtol=1e-6)
  # sqrt(degree) is the eigenvector of eigenvalue 1: Â sqrt(d) = sqrt(d).
  np.testing.assert_allclose(graphs.spmm(adj, jnp.sqrt(degree)),
                             np.sqrt(degree), rtol=1e-6)
  assert row_sums[6] == pytest.approx(1.0)   # isolated node: its self-loop


def test_spmm_and_permute_rows_match_dense():
  rng = np.random.default_rng(0)
  dense = rng.normal(size=(6, 5)) * (rng.random((6, 5)) < 0.4)
  r, c = np.nonzero(dense)
  x = graphs.sparse_from_coo(r, c, dense[r, c], (6, 5))
  w = rng.normal(size=(5, 3)).astype(np.float32)
  np.testing.assert_allclose(graphs.spmm(x, w), dense @ w, rtol=1e-5, atol=1e-6)
  perm = jnp.array([2, 0, 5, 1, 3, 4])
  np.testing.assert_allclose(graphs.spmm(graphs.permute_rows(x, perm), w),
                             dense[np.asarray(perm)] @ w, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='x must have 5 rows'):
    graphs.spmm(x, jnp.ones((4, 3)))


def test_row_normalize():
  x = graphs.sparse_from_coo([0, 0, 2], [1, 3, 2], [1.0, 3.0, 2.0], (3, 4))
  np.testing.assert_allclose(graphs.row_normalize(x).to_dense(),
                             [[0, .25, 0, .75], [0, 0, 0, 0], [0, 0, 1, 0]])


def test_gcn_layer_equals_dense_reference():
  edges, n = _small_graph()
  adj = graphs.normalized_adjacency(edges, n)
  rng = np.random.default_rng(1)
  dense_x = (rng.random((n, 5)) < 0.5).astype(np.float32)
  r, c = np.nonzero(dense_x)
  sparse_x = graphs.sparse_from_coo(r, c, dense_x[r, c], dense_x.shape)
  layer = graphs.GCNLayer(4)
  params = layer.init(jax.random.PRNGKey(0), dense_x, adj)
  params = jax.tree.map(lambda p: p, params)
  params['params']['bias'] = jnp.arange(4.0) - 1.5       # make b matter
  kernel = np.asarray(params['params']['kernel'])
  slope = float(params['params']['prelu']['negative_slope'])
  assert slope == pytest.approx(0.25)
  a_hat, _ = _dense_norm_adj(edges, n)
  pre = a_hat @ dense_x @ kernel + np.asarray(params['params']['bias'])
  reference = np.where(pre >= 0, pre, slope * pre)
  np.testing.assert_allclose(layer.apply(params, dense_x, adj), reference,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(layer.apply(params, sparse_x, adj), reference,
                             rtol=1e-5, atol=1e-6)
  # The corrupted branch equals the layer on row-shuffled features.
  perm = jnp.array([3, 6, 0, 2, 5, 1, 4])
  _, h_perm = layer.apply(params, sparse_x, adj, row_permutation=perm)
  np.testing.assert_allclose(
      h_perm, layer.apply(params, graphs.permute_rows(sparse_x, perm), adj),
      rtol=1e-5, atol=1e-6)


def test_gin_layer_equals_dense_reference():
  edges, n = _small_graph()
  directed = np.concatenate([edges, edges[:, ::-1]])
  adj = graphs.sparse_from_coo(directed[:, 1], directed[:, 0],
                               np.ones(len(directed)), (n, n))
  x = np.random.default_rng(2).normal(size=(n, 3)).astype(np.float32)
  layer = graphs.GINLayer(4, epsilon=0.5)
  params = layer.init(jax.random.PRNGKey(0), x, adj)
  p = params['params']
  a = adj.to_dense()
  h = 1.5 * x + a @ x
  h = np.maximum(h @ p['dense_0']['kernel'] + p['dense_0']['bias'], 0)
  reference = h @ p['dense_1']['kernel'] + p['dense_1']['bias']
  np.testing.assert_allclose(layer.apply(params, x, adj), reference, rtol=1e-5,
                             atol=1e-5)


def test_graph_batches_are_padding_invariant():
  data = _toy_tu_dataset()
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


def _toy_planetoid(n=23, f=9, seed=0) -> graphs.Planetoid:
  rng = np.random.default_rng(seed)
  dense = (rng.random((n, f)) < 0.3).astype(np.float32)
  r, c = np.nonzero(dense)
  x = graphs.row_normalize(graphs.sparse_from_coo(r, c, dense[r, c], (n, f)))
  edges = graphs.undirected_edges(rng.integers(0, n, (2 * n, 2)), n)
  return graphs.Planetoid('toy', x, np.zeros(n, np.int32), edges, np.arange(4),
                          np.arange(4, 8), np.arange(8, 16), 2)


def test_row_blocked_dgi_equals_the_plain_graph():
  # The data-parallel layout of DGI (node rows cut into blocks, padded) gives
  # the plain full-graph loss and gradients, for any block count.
  data = _toy_planetoid()
  n, model, adj = data.num_nodes, graphs.DGI(8), data.adjacency()
  params = model.init(jax.random.PRNGKey(0), data.features, adj, jnp.arange(n))
  perm = jax.random.permutation(jax.random.PRNGKey(1), n)

  @jax.jit
  def plain(p):
    return jax.value_and_grad(lambda p: graphs.dgi_objective(
        *model.apply(p, data.features, adj, perm)))(p)

  @jax.jit
  def blocked(p, g):
    perm_pad = jnp.concatenate([perm, jnp.arange(n, g['node_mask'].shape[0])])
    return jax.value_and_grad(lambda p: graphs.dgi_objective(
        *model.apply(p, g['x'], g['adjacency'], perm_pad, g['node_mask']),
        mask=g['node_mask']))(p)

  ref = plain(params)
  for b in (1, 4):                      # 23 nodes: 4 blocks of 6 (1 padding)
    g = graphs.dgi_task(data, hidden=8, num_blocks=b, max_epochs=2).data
    assert g['x'].num_blocks == b and g['x'].shape == (-(-n // b) * b, 9)
    np.testing.assert_allclose(g['adjacency'].to_dense()[:n, :n],
                               adj.to_dense(), rtol=1e-6)
    np.testing.assert_allclose(g['x'].to_dense()[:n], data.features.to_dense(),
                               rtol=1e-6)
    out = blocked(params, g)
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(ref)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_train_dgi_stops_early_and_resumes_stopped(tmp_path):
  data = _toy_planetoid()
  kw = dict(hidden=8, max_epochs=40, patience=3, log_every=5, verbose=False,
            workdir=str(tmp_path))
  first = graphs.train_dgi(data, **kw)
  n = len(first.losses)
  assert n < 40 and n - 1 - first.best_epoch == 3      # stopped by patience
  assert first.losses[first.best_epoch] == min(first.losses)
  # The stop is checkpointed: a rerun restores it and trains nothing more.
  again = graphs.train_dgi(data, **kw)
  assert again.losses == first.losses and again.best_epoch == first.best_epoch
  for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(first.params)):
    np.testing.assert_array_equal(a, b)


def test_device_graph_batches_match_host_batches():
  data = _toy_tu_dataset(sizes=(3, 4, 2, 5, 6, 1, 3))
  model = graphs.InfoGraph(hidden=8, num_layers=2)
  variables = graphs.infograph_init(data, hidden=8, num_layers=2, batch_size=6,
                                    seed=0)
  arrays = jax.tree.map(jnp.asarray, graphs.tu_arrays(data))

  @jax.jit
  def objective(batch):
    scores, _ = model.apply(variables, batch, train=True,
                            mutable=['batch_stats'])
    return graphs.infograph_objective(scores, batch, 'infonce')

  def device_batch(ids, per_block):
    nodes, edges = graphs.padded_sizes(data, per_block)
    return jax.jit(functools.partial(graphs.device_graph_batch,
                                     num_nodes=nodes, num_edges=edges))(
                                         arrays, np.asarray(ids))

  ids = [2, 0, 5, 6, 1, 4]
  nodes, edges = graphs.padded_sizes(data, 6)
  host = graphs.batch_graphs(data, ids, num_nodes=nodes, num_edges=edges,
                             num_graphs=6)
  one = device_batch([ids], 6)          # one block: batch_graphs' layout
  for field in ('x', 'node_graph', 'node_mask', 'graph_mask'):
    np.testing.assert_array_equal(getattr(one, field), getattr(host, field))
  np.testing.assert_array_equal(one.adjacency.to_dense(),
                                host.adjacency.to_dense())
  expected = objective(host)
  # Dealt into 2 blocks (one per device) with empty slots: the same bound.
  batch = device_batch([[2, 0, 5, -1], [6, 1, 4, -1]], 4)
  assert batch.adjacency.num_blocks == 2 and batch.num_graphs == 8
  np.testing.assert_allclose(objective(batch), expected, rtol=1e-5)


# -------------------------------------------------- restricted unpickler --

class _Evil:
  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (os.system, (f'touch {self.path}',))


def test_restricted_unpickler_rejects_malicious_pickles(tmp_path):
  marker = tmp_path / 'pwned'
  with pytest.raises(graphs.UnsafePickleError,
                     match=r'refusing to load (posix|os|nt)\.system'):
    graphs.restricted_loads(pickle.dumps(_Evil(marker), protocol=2))
  assert not marker.exists()
  with pytest.raises(graphs.UnsafePickleError, match=r'__builtin__\.eval'):
    graphs.restricted_loads(b"c__builtin__\neval\n(S'1+1'\ntR.")
  with pytest.raises(graphs.UnsafePickleError, match='object dtypes'):
    graphs.restricted_loads(pickle.dumps(np.array([1, 'a'], dtype=object),
                                         protocol=4))
  # A malicious file in place of a real one fails the loader the same way.
  folder = tmp_path / 'planetoid'
  folder.mkdir()
  _write_planetoid(folder)
  (folder / 'ind.cora.graph').write_bytes(pickle.dumps(_Evil(marker)))
  with pytest.raises(graphs.UnsafePickleError, match='allow-list'):
    graphs.load_planetoid('cora', str(tmp_path))
  assert not marker.exists()


def _write_planetoid(folder, name='cora'):
  """A 10-node Planetoid-format graph: 6 allx nodes, test nodes 6, 8, 9."""
  rng = np.random.default_rng(0)
  allx = (rng.random((6, 4)) < 0.5).astype(np.float32)
  allx[:, 0] = 1.0
  tx = np.array([[1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 4]], np.float32)
  onehot = np.eye(3, dtype=np.int32)
  parts = {
      'x': sparse.csr_matrix(allx[:2]), 'y': onehot[[0, 1]],
      'allx': sparse.csr_matrix(allx), 'ally': onehot[[0, 1, 2, 0, 1, 2]],
      'tx': sparse.csr_matrix(tx), 'ty': onehot[[2, 0, 1]],
  }
  graph = collections.defaultdict(list)
  graph.update({0: [1, 1, 2], 1: [0], 2: [0, 2], 3: [4], 4: [3], 5: [],
                6: [9], 7: [], 8: [], 9: [6]})
  parts['graph'] = graph
  for key, value in parts.items():
    (folder / f'ind.{name}.{key}').write_bytes(pickle.dumps(value, protocol=4))
  (folder / f'ind.{name}.test.index').write_text('9\n6\n8\n')
  return allx, tx


def test_load_planetoid_synthetic_files(tmp_path):
  folder = tmp_path / 'planetoid'
  folder.mkdir()
  allx, tx = _write_planetoid(folder)
  data = graphs.load_planetoid('Cora', str(tmp_path))
  assert (data.num_nodes, data.num_features, data.num_classes) == (10, 4, 3)
  np.testing.assert_array_equal(data.edges, [[0, 1], [0, 2], [3, 4], [6, 9]])
  np.testing.assert_array_equal(data.train_index, [0, 1])
  np.testing.assert_array_equal(data.val_index, [2, 3, 4, 5])
  np.testing.assert_array_equal(data.test_index, [6, 8, 9])
  # Test row k belongs to node test.index[k] = 9, 6, 8; node 7 has nothing.
  np.testing.assert_array_equal(data.labels, [0, 1, 2, 0, 1, 2, 0, -1, 1, 2])
  feats = data.features.to_dense()
  np.testing.assert_allclose(feats[:6], allx / allx.sum(1, keepdims=True),
                             rtol=1e-6)
  np.testing.assert_allclose(feats[[9, 6, 8]], tx / tx.sum(1, keepdims=True))
  np.testing.assert_array_equal(feats[7], 0.0)


def test_loaders_report_missing_files_and_settings(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError,
                     match=r'ind\.citeseer\.x.*INFOMAX_DATA_DIR'):
    graphs.load_planetoid('citeseer', str(tmp_path))
  with pytest.raises(FileNotFoundError, match='MUTAG_A.txt'):
    graphs.load_tu_dataset('MUTAG', str(tmp_path))
  monkeypatch.delenv(graphs.DATA_DIR_ENV, raising=False)
  with pytest.raises(ValueError, match='INFOMAX_DATA_DIR'):
    graphs.load_planetoid('cora')
  with pytest.raises(ValueError, match='valid names are: cora, citeseer'):
    graphs.load_planetoid('pubmed', str(tmp_path))


def test_load_tu_dataset_synthetic_files(tmp_path):
  folder = tmp_path / 'TOY'
  folder.mkdir()
  (folder / 'TOY_A.txt').write_text('1, 2\n2, 1\n4, 5\n5, 4\n3, 3\n')
  (folder / 'TOY_graph_indicator.txt').write_text('1\n1\n1\n2\n2\n')
  (folder / 'TOY_graph_labels.txt').write_text('-1\n1\n')
  (folder / 'TOY_node_labels.txt').write_text('0\n2\n2\n5\n0\n')
  data = graphs.load_tu_dataset('TOY', str(tmp_path))
  assert (data.num_graphs, data.num_nodes, data.num_classes) == (2, 5, 2)
  np.testing.assert_array_equal(data.graph_labels, [0, 1])
  np.testing.assert_array_equal(data.node_features.argmax(1), [0, 1, 1, 2, 0])
  np.testing.assert_array_equal(data.node_offsets, [0, 3, 5])
  np.testing.assert_array_equal(data.edge_offsets, [0, 3, 5])
  (folder / 'TOY_A.txt').write_text('1, 4\n')
  with pytest.raises(ValueError, match='different graphs'):
    graphs.load_tu_dataset('TOY', str(tmp_path))


# ------------------------------------------------------------- real data --

def test_cora_counts():
  data = graphs.load_planetoid('cora', _real_data_dir())
  assert (data.num_nodes, data.num_features,
          data.num_classes) == (2708, 1433, 7)
  assert data.edges.shape == (5278, 2)
  assert (data.train_index.size, data.val_index.size,
          data.test_index.size) == (140, 500, 1000)
  np.testing.assert_array_equal(np.bincount(data.labels[data.train_index]),
                                [20] * 7)
  assert np.all(data.labels >= 0)
  row_sums = np.bincount(data.features.rows, data.features.values,
                         minlength=data.num_nodes)
  np.testing.assert_allclose(row_sums, 1.0, rtol=1e-5)
  # Â: symmetric, row sums = sum_j 1 / sqrt(d_i d_j), Â sqrt(d) = sqrt(d).
  adj = data.adjacency()
  assert adj.nnz == 2 * 5278 + 2708
  degree = 1.0 + np.bincount(data.edges.ravel(), minlength=data.num_nodes)
  inv = 1.0 / np.sqrt(degree)
  expected_rows = inv * (inv + np.bincount(
      data.edges[:, 0], inv[data.edges[:, 1]], minlength=data.num_nodes)
      + np.bincount(data.edges[:, 1], inv[data.edges[:, 0]],
                    minlength=data.num_nodes))
  np.testing.assert_allclose(graphs.spmm(adj, jnp.ones(data.num_nodes)),
                             expected_rows, rtol=1e-5)
  np.testing.assert_allclose(graphs.spmm(adj, jnp.sqrt(degree)),
                             np.sqrt(degree), rtol=1e-5)


def test_citeseer_counts():
  data = graphs.load_planetoid('citeseer', _real_data_dir())
  assert (data.num_nodes, data.num_features,
          data.num_classes) == (3327, 3703, 6)
  assert (data.train_index.size, data.val_index.size,
          data.test_index.size) == (120, 500, 1000)
  np.testing.assert_array_equal(np.bincount(data.labels[data.train_index]),
                                [20] * 6)
  # The 15 test-range nodes missing from test.index ("isolated" in Kipf &
  # Welling's words: outside the test set, though they do have citations)
  # carry no label and no features, and are in no split.
  unlabeled = np.flatnonzero(data.labels < 0)
  assert unlabeled.size == 15
  splits = np.concatenate([data.train_index, data.val_index, data.test_index])
  assert not np.isin(unlabeled, splits).any()
  assert not np.isin(unlabeled, data.features.rows).any()
  # Measured (the README states no CiteSeer edge count): 4552 undirected
  # edges once self-loops and duplicates are dropped, as PyG's 9104 / 2.
  assert data.edges.shape == (4552, 2)


def test_mutag_counts():
  data = graphs.load_tu_dataset('MUTAG', _real_data_dir())
  assert (data.num_graphs, data.num_nodes, data.num_classes) == (188, 3371, 2)
  np.testing.assert_array_equal(np.bincount(data.graph_labels), [63, 125])
  assert data.node_features.shape == (3371, 7)
  assert graphs.undirected_edges(data.edges, data.num_nodes).shape == (3721, 2)
  assert data.edges.shape == (7442, 2)


# ------------------------------------------------------------ experiments --

@pytest.mark.parametrize('name', ['dgi', 'infograph'])
def test_experiment_runs_tiny_config(name, tmp_path):
  data_dir = _real_data_dir()
  env = dict(os.environ, **{graphs.DATA_DIR_ENV: os.path.abspath(data_dir),
                            'JAX_PLATFORMS': 'cpu'})
  proc = subprocess.run(
      [sys.executable, '-m', f'experiments.{name}',
       f'--config=experiments/configs/{name}.py:tiny',
       f'--workdir={tmp_path}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for out in ('results.md', 'results.csv', 'runs.csv', 'metrics.jsonl'):
    assert (tmp_path / out).exists(), out
  assert '| data set |' in proc.stdout
