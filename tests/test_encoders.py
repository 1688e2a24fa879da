"""Tests for infomax_jax.encoders: shapes, identity at init, the registry."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import encoders
from infomax_jax.flows import RealNVP


def _normal(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.slow
def test_mlp_shapes_and_final_activation():
  x = _normal((4, 12))
  model = encoders.MLP(features=(16, 8, 5))
  params = model.init(jax.random.key(0), x)
  y = model.apply(params, x)
  assert y.shape == (4, 5)
  assert bool(jnp.any(y < 0))  # no activation after the last layer
  assert [params['params'][f'dense_{i}']['kernel'].shape for i in range(3)] \
      == [(12, 16), (16, 8), (8, 5)]
  relu_out = encoders.MLP(features=(16, 5), final_activation=True)
  y = relu_out.apply(relu_out.init(jax.random.key(0), x), x)
  assert y.shape == (4, 5) and bool(jnp.all(y >= 0))


def test_mlp_custom_activation():
  x = _normal((3, 6))
  model = encoders.MLP(features=(7,), activation=nn.tanh,
                       final_activation=True)
  y = model.apply(model.init(jax.random.key(0), x), x)
  assert bool(jnp.all(jnp.abs(y) < 1))


def test_mlp_without_layers_raises():
  with pytest.raises(ValueError, match='at least one layer'):
    encoders.MLP(features=()).init(jax.random.key(0), jnp.zeros((1, 3)))


def test_residual_mlp_is_identity_at_init():
  x = _normal((8, 20))
  model = encoders.ResidualMLP(width=20)
  params = model.init(jax.random.key(0), x)
  assert len(params['params']) == 5
  # Each branch adds relu(W x) with W ~ N(0, 1e-8): O(1e-3) over 5 blocks.
  np.testing.assert_allclose(model.apply(params, x), x, atol=1e-2)
  # The Jacobian is near the identity too (well conditioned at init).
  jac = jax.jacfwd(lambda v: model.apply(params, v))(x[0])
  np.testing.assert_allclose(jac, np.eye(20), atol=1e-3)


def test_residual_mlp_large_init_is_not_identity():
  x = _normal((8, 20))
  model = encoders.ResidualMLP(width=20, num_layers=2, init_std=1.0)
  y = model.apply(model.init(jax.random.key(0), x), x)
  assert y.shape == x.shape
  assert float(jnp.max(jnp.abs(y - x))) > 0.1


def test_residual_mlp_wrong_width_raises():
  model = encoders.ResidualMLP(width=20)
  with pytest.raises(ValueError, match=r'\(\.\.\., 20\).*\(4, 19\)'):
    model.init(jax.random.key(0), jnp.zeros((4, 19)))


@pytest.mark.slow
def test_convnet_flat_and_image_inputs():
  x = _normal((2, 392))
  model = encoders.ConvNet()
  params = model.init(jax.random.key(0), x)
  y = model.apply(params, x)
  assert y.shape == (2, 100)
  y_img = model.apply(params, x.reshape(2, 14, 28, 1))
  np.testing.assert_allclose(y_img, y, atol=1e-6)
  kernels = [params['params'][f'conv_{i}']['kernel'].shape for i in range(2)]
  assert kernels == [(5, 5, 1, 64), (5, 5, 64, 128)]


def test_convnet_configurable_features():
  x = _normal((2, 392))
  model = encoders.ConvNet(features=16)
  assert model.apply(model.init(jax.random.key(0), x), x).shape == (2, 16)


@pytest.mark.parametrize('shape', ((2, 784), (2, 28, 28, 1), (392,)))
def test_convnet_bad_shape_raises(shape):
  with pytest.raises(ValueError, match='392'):
    encoders.ConvNet().init(jax.random.key(0), jnp.zeros(shape))


@pytest.mark.parametrize('name,kwargs,cls', (
    ('mlp', {'features': (4,)}, encoders.MLP),
    ('residual_mlp', {'width': 4}, encoders.ResidualMLP),
    ('convnet', {}, encoders.ConvNet),
    ('realnvp', {'num_couplings': 2}, RealNVP),
))
def test_make_encoder(name, kwargs, cls):
  model = encoders.make_encoder(name, **kwargs)
  assert isinstance(model, cls)
  for key, value in kwargs.items():
    assert getattr(model, key) == value


def test_make_encoder_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match='unknown encoder') as info:
    encoders.make_encoder('transformer')
  for name in ('convnet', 'mlp', 'realnvp', 'residual_mlp'):
    assert name in str(info.value)
