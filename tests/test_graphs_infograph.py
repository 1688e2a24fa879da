"""Tests of infomax_jax.graphs.infograph: masks, padding, the model."""

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
