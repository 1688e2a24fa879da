"""Tests for infomax_jax.flows: invertibility, log-dets against brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import flows
from infomax_jax.flows import RealNVP

COUPLINGS = ('additive', 'affine_softplus', 'affine_exp')
# (num_couplings, d): includes odd d, so the halves differ in size.
SHAPES = ((1, 7), (4, 10), (5, 7))
HIDDEN = (32, 32)


def _x64():
  """Float64 context manager across JAX versions."""
  if hasattr(jax, 'enable_x64'):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


def _method(model, method_name):
  """``model.apply(params, x, method=...)`` as a function of (params, x).

  Not jitted: on tiny shapes XLA compilation of each whole flow costs more
  than op-by-op dispatch, whose per-op compilations are shared across tests.
  """
  method = getattr(model, method_name)
  return lambda params, x: model.apply(params, x, method=method)


def _trained_looking_params(model, d, seed=0, std=0.1):
  """Init params, then perturb every leaf by N(0, std^2): far from identity."""
  key_init, key_noise = jax.random.split(jax.random.key(seed))
  params = model.init(key_init, jnp.zeros((1, d)))
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key_noise, len(leaves))
  leaves = [p + std * jax.random.normal(k, p.shape, p.dtype)
            for p, k in zip(leaves, keys)]
  return jax.tree.unflatten(treedef, leaves)


def _inputs(d, batch=8, seed=1):
  return jax.random.normal(jax.random.key(seed), (batch, d))


@pytest.mark.slow
@pytest.mark.parametrize('coupling', COUPLINGS)
@pytest.mark.parametrize('num_couplings,d', SHAPES)
def test_inverse_of_forward_is_identity(coupling, num_couplings, d):
  model = RealNVP(num_couplings, hidden=HIDDEN, coupling=coupling)
  params = _trained_looking_params(model, d)
  x = _inputs(d)
  forward = _method(model, '__call__')
  y = forward(params, x)
  # The flow must be far from identity for this test to mean something.
  assert float(jnp.max(jnp.abs(y - x))) > 0.05
  x_rec = _method(model, 'inverse')(params, y)
  np.testing.assert_allclose(x_rec, x, atol=1e-5, rtol=1e-5)
  y_rec = forward(params, x_rec)
  np.testing.assert_allclose(y_rec, y, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('coupling', COUPLINGS)
@pytest.mark.parametrize('num_couplings,d', ((3, 7), (4, 10)))
def test_log_det_matches_brute_force_jacobian(coupling, num_couplings, d):
  model = RealNVP(num_couplings, hidden=HIDDEN, coupling=coupling)
  params = _trained_looking_params(model, d, std=0.3)
  with _x64():
    params64 = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    x = np.asarray(_inputs(d), np.float64)
    x = jnp.asarray(x)
    _, log_det = _method(model, 'forward_and_log_det')(params64, x)
    assert log_det.dtype == jnp.float64
    # Brute force: the dense (d, d) Jacobian of the single-vector map.
    jac = jax.vmap(jax.jacfwd(lambda v: model.apply(params64, v)))(x)
    assert jac.shape == (x.shape[0], d, d)
    sign, expected = jnp.linalg.slogdet(jac)
    assert bool(jnp.all(sign != 0.0))
    np.testing.assert_allclose(log_det, expected, atol=1e-9, rtol=1e-9)
    if coupling != 'additive':
      # Non-trivial log-dets, else the comparison above is vacuous.
      assert float(jnp.max(jnp.abs(log_det))) > 1e-2


@pytest.mark.parametrize('coupling', COUPLINGS)
def test_inverse_log_det_is_minus_forward(coupling):
  model = RealNVP(4, hidden=HIDDEN, coupling=coupling)
  params = _trained_looking_params(model, 7)
  x = _inputs(7)
  y, fwd = _method(model, 'forward_and_log_det')(params, x)
  x_rec, inv = _method(model, 'inverse_and_log_det')(params, y)
  assert fwd.shape == inv.shape == (x.shape[0],)
  np.testing.assert_allclose(inv, -fwd, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(x_rec, x, atol=1e-5, rtol=1e-5)


def test_additive_log_det_is_exactly_zero():
  model = RealNVP(5, hidden=HIDDEN, coupling='additive')
  params = _trained_looking_params(model, 10, std=0.5)
  x = _inputs(10)
  _, fwd = _method(model, 'forward_and_log_det')(params, x)
  _, inv = _method(model, 'inverse_and_log_det')(params, x)
  np.testing.assert_array_equal(fwd, np.zeros(x.shape[0]))
  np.testing.assert_array_equal(inv, np.zeros(x.shape[0]))


@pytest.mark.parametrize('coupling', COUPLINGS)
def test_near_permutation_at_init(coupling):
  num_couplings, d = 6, 7
  model = RealNVP(num_couplings, coupling=coupling, init_std=1e-4)
  x = _inputs(d)
  params = model.init(jax.random.key(0), x)
  y, log_det = _method(model, 'forward_and_log_det')(params, x)
  # x[..., p1][..., p2] = x[..., p1[p2]]: compose the per-coupling gathers.
  total = np.arange(d)
  for perm in model.permutations(d):
    total = total[perm]
  np.testing.assert_allclose(y, x[:, total], atol=1e-5)
  np.testing.assert_allclose(log_det, np.zeros(x.shape[0]), atol=1e-5)


def test_permutations_are_fixed_constants():
  model = RealNVP(4, hidden=HIDDEN, permutation_seed=3)
  x = _inputs(10)
  init = model.init
  params_a = init(jax.random.key(0), x)
  params_b = init(jax.random.key(1), x)
  # Only conditioner weights are parameters; permutations are not.
  assert set(params_a['params']) == {f'coupling_{i}' for i in range(4)}
  leaves_a, leaves_b = jax.tree.leaves(params_a), jax.tree.leaves(params_b)
  assert any(not np.array_equal(a, b) for a, b in zip(leaves_a, leaves_b))
  perms = model.permutations(10)
  np.testing.assert_array_equal(perms, RealNVP(4, permutation_seed=3)
                                .permutations(10))
  assert perms.shape == (4, 10)
  for perm in perms:
    np.testing.assert_array_equal(np.sort(perm), np.arange(10))
  assert not np.array_equal(perms, RealNVP(4, permutation_seed=4)
                            .permutations(10))
  # Zeroing every parameter leaves exactly the permutation.
  zero = jax.tree.map(jnp.zeros_like, params_a)
  total = np.arange(10)
  for perm in perms:
    total = total[perm]
  np.testing.assert_array_equal(_method(model, '__call__')(zero, x),
                                x[:, total])


def test_single_vector_matches_batch():
  model = RealNVP(3, hidden=HIDDEN, coupling='affine_softplus')
  params = _trained_looking_params(model, 7)
  x = _inputs(7)
  forward = _method(model, 'forward_and_log_det')
  y, log_det = forward(params, x)
  y0, log_det0 = forward(params, x[0])
  assert y0.shape == (7,) and log_det0.shape == ()
  np.testing.assert_allclose(y0, y[0], atol=1e-6)
  np.testing.assert_allclose(log_det0, log_det[0], atol=1e-6)
  x0 = _method(model, 'inverse')(params, y0)
  np.testing.assert_allclose(x0, x[0], atol=1e-5)


def test_jit_and_grad():
  model = RealNVP(3, hidden=HIDDEN, coupling='affine_exp')
  params = _trained_looking_params(model, 10)
  x = _inputs(10)

  @jax.jit
  def loss(p):
    y, log_det = model.apply(p, x, method=model.forward_and_log_det)
    return jnp.mean(y ** 2) - jnp.mean(log_det)

  grads = jax.grad(loss)(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))


def test_unknown_coupling_raises():
  model = RealNVP(2, coupling='spline')
  with pytest.raises(ValueError, match='additive, affine_softplus, affine_exp'):
    model.init(jax.random.key(0), jnp.zeros((1, 4)))


@pytest.mark.parametrize('shape', ((2, 3, 4), (4, 1)))
def test_bad_input_shape_raises(shape):
  model = RealNVP(2, hidden=HIDDEN)
  with pytest.raises(ValueError, match=r'got'):
    model.init(jax.random.key(0), jnp.zeros(shape))


def test_integer_input_raises():
  model = RealNVP(2, hidden=HIDDEN)
  with pytest.raises(TypeError, match='floating'):
    model.init(jax.random.key(0), jnp.zeros((2, 4), jnp.int32))


def test_zero_couplings_raises():
  with pytest.raises(ValueError, match='num_couplings'):
    RealNVP(0).init(jax.random.key(0), jnp.zeros((1, 4)))


def test_coupling_permutations_is_deterministic():
  a = flows.coupling_permutations(3, 5, 0)
  b = flows.coupling_permutations.__wrapped__(3, 5, 0)
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.int32

