"""Tests of infomax_jax.graphs.masked_bounds: MI bounds with masked positives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import bounds
from infomax_jax import graphs
from tests import graphs_fixtures as fx

BOUND_FNS = {'jsd': bounds.jsd, 'infonce': bounds.infonce, 'dv': bounds.dv,
             'nwj': bounds.nwj}


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
  n = [0.0, -1.0, 1.0, 3.0]
  sp = fx.softplus
  expected = {
      'jsd': -(sp(-2.0) + sp(-0.5)) / 2 - sum(sp(v) for v in n) / 4,
      'dv': 1.25 - math.log(sum(math.exp(v) for v in n) / 4),
      'nwj': 1.25 - sum(math.exp(v - 1.0) for v in n) / 4,
      'infonce': ((math.log(3) + 2.0 - math.log(math.exp(2) + 1 + math.exp(-1)))
                  + (math.log(3) + 0.5 - math.log(math.exp(0.5) + math.exp(1)
                                                  + math.exp(3)))) / 2,
  }
  for name, value in expected.items():
    np.testing.assert_allclose(graphs.masked_bound(scores, pos, bound=name),
                               value, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize('bound', sorted(BOUND_FNS))
def test_masked_bound_matches_loops_with_an_explicit_negative_mask(bound):
  # Random disjoint masks on a rectangular matrix; some entries in neither.
  rng = np.random.default_rng(4)
  scores = rng.normal(size=(5, 7)) * 2.0
  kind = rng.integers(0, 3, size=(5, 7))        # 0: positive, 1: negative
  kind[:, 0], kind[:, 1] = 0, 1                 # every row has both
  pos, neg = kind == 0, kind == 1
  np.testing.assert_allclose(
      graphs.masked_bound(jnp.asarray(scores, jnp.float32), jnp.asarray(pos),
                          jnp.asarray(neg), bound=bound),
      fx.loop_bound(scores, pos, neg, bound), rtol=1e-5, atol=1e-6)


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
