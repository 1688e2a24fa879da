"""Tests of infomax_jax.graphs.dgi: objective, data-parallel layout, training."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from infomax_jax import graphs
from tests import graphs_fixtures as fx


@pytest.mark.slow
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


@pytest.mark.slow
def test_dgi_objective_with_a_mask_drops_the_masked_nodes():
  pos, neg = jax.random.normal(jax.random.PRNGKey(5), (2, 8))
  mask = jnp.arange(8) < 5
  for bound in ('jsd', 'infonce'):
    np.testing.assert_allclose(
        graphs.dgi_objective(pos, neg, bound, mask=mask),
        graphs.dgi_objective(pos[:5], neg[:5], bound), rtol=1e-6)
  with pytest.raises(ValueError, match='must be 1-D'):
    graphs.dgi_objective(pos[None], neg)


@pytest.mark.slow
def test_row_blocked_dgi_equals_the_plain_graph():
  # The data-parallel layout of DGI (node rows cut into blocks, padded) gives
  # the plain full-graph loss and gradients, for any block count.
  data = fx.toy_planetoid()
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


@pytest.mark.slow
def test_train_dgi_stops_early_and_resumes_stopped(tmp_path):
  data = fx.toy_planetoid()
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
