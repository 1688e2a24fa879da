"""Tests for infomax_jax.critics against per-pair numpy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import critics

K, DX, DY = 5, 3, 4


def _batch(seed=0, k=K, dx=DX, dy=DY):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(k, dx)).astype(np.float32),
          rng.normal(size=(k, dy)).astype(np.float32))


def _init_apply(critic, x, y):
  params = critic.init(jax.random.PRNGKey(0), x, y)
  return params, np.asarray(jax.jit(critic.apply)(params, x, y), np.float64)


def _np_mlp(params, x):
  """The critics' MLP (ReLU between Dense layers, none after the last)."""
  names = sorted(params, key=lambda n: int(n.split('_')[1]))
  for i, name in enumerate(names):
    x = x @ np.asarray(params[name]['kernel'], np.float64) + np.asarray(
        params[name]['bias'], np.float64)
    if i + 1 < len(names):
      x = np.maximum(x, 0.0)
  return x


def test_bilinear_is_x_w_y():
  x, y = _batch()
  params, scores = _init_apply(critics.make_critic('bilinear'), x, y)
  w = np.asarray(params['params']['kernel'], np.float64)
  assert w.shape == (DX, DY)
  want = np.array([[x[i].astype(np.float64) @ w @ y[j] for j in range(K)]
                   for i in range(K)])
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)


def test_separable_is_dot_product_of_two_mlps():
  x, y = _batch(1)
  critic = critics.make_critic('separable', hidden=(8, 6), embed_dim=3)
  params, scores = _init_apply(critic, x, y)
  p = params['params']
  gx, gy = _np_mlp(p['phi_x'], x), _np_mlp(p['phi_y'], y)
  assert gx.shape == (K, 3)
  want = np.array([[gx[i] @ gy[j] for j in range(K)] for i in range(K)])
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('hidden', [(7,), (7, 6), (7, 6, 5)])
def test_concat_equals_mlp_on_every_concatenated_pair(hidden):
  x, y = _batch(2)
  critic = critics.make_critic('concat', hidden=hidden)
  params, scores = _init_apply(critic, x, y)
  p = params['params']
  w0 = np.asarray(p['kernel_0'], np.float64)
  b0 = np.asarray(p['bias_0'], np.float64)
  assert w0.shape == (DX + DY, hidden[0])
  want = np.empty((K, K))
  for i in range(K):
    for j in range(K):
      # The naive critic: concatenate the pair, then Dense-ReLU-...-Dense.
      h = np.maximum(np.concatenate([x[i], y[j]]) @ w0 + b0, 0.0)
      want[i, j] = _np_mlp(p['tail'], h[None, :])[0, 0]
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)


def test_inner_product():
  x, y = _batch(3, dy=DX)
  critic = critics.make_critic('inner_product', temperature=0.5)
  _, scores = _init_apply(critic, x, y)
  want = np.array([[np.dot(x[i], y[j]) / 0.5 for j in range(K)]
                   for i in range(K)])
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name, kwargs', [
    ('bilinear', {}), ('separable', {'hidden': (8,), 'embed_dim': 4}),
    ('concat', {'hidden': (8, 8)}), ('inner_product', {})])
def test_shapes_and_gradients(name, kwargs):
  x, y = _batch(4, k=6, dy=DX if name == 'inner_product' else DY)
  critic = critics.make_critic(name, **kwargs)
  params = critic.init(jax.random.PRNGKey(1), x, y)
  scores = critic.apply(params, x, y)
  assert scores.shape == (6, 6)
  assert scores.dtype == jnp.float32
  # The critic is differentiable in its inputs (an encoder trains through it).
  gx = jax.grad(lambda x: jnp.sum(critic.apply(params, x, y) ** 2))(x)
  assert gx.shape == x.shape and np.all(np.isfinite(gx))


def test_registry_rejects_unknown_name_listing_valid_ones():
  with pytest.raises(ValueError, match=(
      "unknown critic 'mlp'; valid critics are: bilinear, concat, "
      'inner_product, separable')):
    critics.make_critic('mlp')
  for name, cls in critics.CRITICS.items():
    assert isinstance(critics.make_critic(name), cls)


@pytest.mark.parametrize('name', sorted(critics.CRITICS))
def test_mismatched_batch_sizes_raise(name):
  x = np.zeros((4, DX), np.float32)
  y = np.zeros((5, DX), np.float32)
  critic = critics.make_critic(name)
  with pytest.raises(ValueError, match='same number of samples K, got 4 and 5'):
    critic.init(jax.random.PRNGKey(0), x, y)


@pytest.mark.parametrize('name', sorted(critics.CRITICS))
def test_non_batched_inputs_raise(name):
  critic = critics.make_critic(name)
  with pytest.raises(ValueError, match=r'2-D batches \(K, d\).*\(3,\)'):
    critic.init(jax.random.PRNGKey(0), np.zeros((3,), np.float32),
                np.zeros((3, DX), np.float32))
