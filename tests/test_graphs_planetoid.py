"""Tests of infomax_jax.graphs.planetoid: the restricted unpickler, the loader.

The real-data tests run when INFOMAX_DATA_DIR is set (graphs_fixtures).
"""

import collections
import os
import pickle

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import sparse

from infomax_jax import graphs
from tests import graphs_fixtures as fx


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
  # numpy.ndarray(shape, 'O') called directly would skip the dtype check.
  with pytest.raises(graphs.UnsafePickleError, match='may not call numpy.ndarray'):
    graphs.restricted_loads(b"cnumpy\nndarray\n((I2\ntS'O'\ntR.")
  # Real arrays (pickled through _reconstruct) still load.
  np.testing.assert_array_equal(
      graphs.restricted_loads(pickle.dumps(np.arange(3.0), protocol=4)), np.arange(3.0))
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


def test_cora_counts():
  data = graphs.load_planetoid('cora', fx.real_data_dir())
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
  data = graphs.load_planetoid('citeseer', fx.real_data_dir())
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
