"""Tests of infomax_jax.graphs.tu: the TU loader and graph batches."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import graphs
from tests import graphs_fixtures as fx


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


def test_mutag_counts():
  data = graphs.load_tu_dataset('MUTAG', fx.real_data_dir())
  assert (data.num_graphs, data.num_nodes, data.num_classes) == (188, 3371, 2)
  np.testing.assert_array_equal(np.bincount(data.graph_labels), [63, 125])
  assert data.node_features.shape == (3371, 7)
  assert graphs.undirected_edges(data.edges, data.num_nodes).shape == (3721, 2)
  assert data.edges.shape == (7442, 2)


def test_padded_sizes_and_host_batch_layout():
  data = fx.toy_tu_dataset()             # path graphs of 3, 4, 2, 5 nodes
  # The 2 largest graphs: 5 + 4 nodes, 8 + 6 directed edges.
  assert graphs.padded_sizes(data, 2) == (9, 14)
  batch = graphs.batch_graphs(data, [2, 0], num_nodes=7, num_edges=8,
                              num_graphs=3)
  np.testing.assert_array_equal(batch.node_graph, [0, 0, 1, 1, 1, 2, 2])
  np.testing.assert_array_equal(batch.node_mask, [1, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(batch.graph_mask, [True, True, False])
  np.testing.assert_array_equal(batch.x[:2], data.node_features[7:9])
  np.testing.assert_array_equal(batch.x[2:5], data.node_features[:3])
  assert not batch.x[5:].any()
  # Adjacency: the two paths 0-1 and 2-3-4; padding edges carry value 0.
  expected = np.zeros((7, 7))
  for a, b in ((0, 1), (2, 3), (3, 4)):
    expected[a, b] = expected[b, a] = 1.0
  np.testing.assert_array_equal(batch.adjacency.to_dense(), expected)


@pytest.mark.slow
def test_device_graph_batches_match_host_batches():
  data = fx.toy_tu_dataset(sizes=(3, 4, 2, 5, 6, 1, 3))
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
