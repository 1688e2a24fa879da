"""Tests of infomax_jax.graphs.layers against dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import graphs
from tests import graphs_fixtures as fx


def test_gcn_layer_equals_dense_reference():
  edges, n = fx.small_graph()
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
  a_hat, _ = fx.dense_norm_adj(edges, n)
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
  with pytest.raises(ValueError, match=r'adjacency must be \(6, 6\)'):
    layer.apply(params, dense_x[:6], adj)


def test_gin_layer_equals_dense_reference():
  edges, n = fx.small_graph()
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


def test_readouts_equal_masked_means_and_per_graph_sums():
  h = jnp.arange(12.0).reshape(4, 3)
  mask = jnp.array([True, False, True, True])
  np.testing.assert_allclose(graphs.mean_readout(h, mask),
                             np.asarray(h)[[0, 2, 3]].mean(0))
  np.testing.assert_allclose(graphs.dgi_summary(h),
                             jax.nn.sigmoid(np.asarray(h).mean(0)), rtol=1e-6)
  # Nodes 0, 1 in graph 0, node 2 in graph 2, node 3 (masked) in graph 1.
  sums = graphs.sum_readout(h, jnp.array([0, 0, 2, 1]), 3,
                            jnp.array([True, True, True, False]))
  np.testing.assert_allclose(sums, [[3, 5, 7], [0, 0, 0], [6, 7, 8]])
