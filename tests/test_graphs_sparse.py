"""Tests of infomax_jax.graphs.sparse: COO matrices, spmm, row blocks, Â."""

import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import graphs
from tests import graphs_fixtures as fx


def _random_sparse(m, n, seed=0, density=0.4):
  rng = np.random.default_rng(seed)
  dense = rng.normal(size=(m, n)) * (rng.random((m, n)) < density)
  r, c = np.nonzero(dense)
  return dense, graphs.sparse_from_coo(r, c, dense[r, c], (m, n))


def test_undirected_edges_and_normalized_adjacency():
  edges, n = fx.small_graph()
  np.testing.assert_array_equal(edges, [[0, 1], [0, 2], [1, 2], [2, 3], [4, 5]])
  adj = graphs.normalized_adjacency(edges, n)
  assert adj.nnz == 2 * len(edges) + n
  dense, degree = fx.dense_norm_adj(edges, n)
  np.testing.assert_allclose(adj.to_dense(), dense, rtol=1e-6)
  row_sums = np.asarray(graphs.spmm(adj, jnp.ones(n)))
  np.testing.assert_allclose(row_sums, dense.sum(1), rtol=1e-6)
  # sqrt(degree) is the eigenvector of eigenvalue 1: Â sqrt(d) = sqrt(d).
  np.testing.assert_allclose(graphs.spmm(adj, jnp.sqrt(degree)),
                             np.sqrt(degree), rtol=1e-6)
  assert row_sums[6] == pytest.approx(1.0)   # isolated node: its self-loop


def test_spmm_and_permute_rows_match_dense():
  dense, x = _random_sparse(6, 5)
  w = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
  np.testing.assert_allclose(graphs.spmm(x, w), dense @ w, rtol=1e-5, atol=1e-6)
  perm = jnp.array([2, 0, 5, 1, 3, 4])
  np.testing.assert_allclose(graphs.spmm(graphs.permute_rows(x, perm), w),
                             dense[np.asarray(perm)] @ w, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='x must have 5 rows'):
    graphs.spmm(x, jnp.ones((4, 3)))


def test_sparse_from_coo_sorts_rows_and_rejects_bad_indices():
  x = graphs.sparse_from_coo([2, 0, 2], [1, 3, 0], [1.0, 2.0, 3.0], (3, 4))
  assert x.rows_sorted
  np.testing.assert_array_equal(x.rows, [0, 2, 2])
  np.testing.assert_array_equal(x.cols, [3, 0, 1])
  with pytest.raises(ValueError, match=r'out of range for shape \(3, 4\)'):
    graphs.sparse_from_coo([0, 3], [0, 0], [1.0, 1.0], (3, 4))
  with pytest.raises(ValueError, match='1-D of one length'):
    graphs.sparse_from_coo([0, 1], [0], [1.0, 1.0], (3, 4))


@pytest.mark.parametrize('num_blocks', [1, 3, 4])
def test_row_blocks_keep_the_matrix_and_its_products(num_blocks):
  # 10 rows in 3 blocks: padded to 12 (two empty rows), 4 rows per block.
  dense, x = _random_sparse(10, 6, seed=2)
  blocked = graphs.row_blocks(x, num_blocks, num_cols=8)
  m_pad = -(-10 // num_blocks) * num_blocks
  assert blocked.num_blocks == num_blocks
  assert blocked.shape == (m_pad, 8)
  expected = np.zeros((m_pad, 8))
  expected[:10, :6] = dense
  np.testing.assert_allclose(blocked.to_dense(), expected, rtol=1e-6)
  v = np.random.default_rng(3).normal(size=(8, 2)).astype(np.float32)
  np.testing.assert_allclose(graphs.spmm(blocked, v), expected @ v, rtol=1e-5,
                             atol=1e-6)
  with pytest.raises(ValueError, match='already row-blocked'):
    graphs.row_blocks(blocked, 2)


def test_row_normalize():
  x = graphs.sparse_from_coo([0, 0, 2], [1, 3, 2], [1.0, 3.0, 2.0], (3, 4))
  np.testing.assert_allclose(graphs.row_normalize(x).to_dense(),
                             [[0, .25, 0, .75], [0, 0, 0, 0], [0, 0, 1, 0]])
