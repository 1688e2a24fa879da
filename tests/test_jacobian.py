"""Tests of infomax_jax.jacobian against numpy and against flow log-dets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import flows
from infomax_jax import jacobian


def _matrix(n: int, top: float, seed: int = 0, m=None) -> np.ndarray:
  """A (m, n) matrix with singular values geometrically spaced in [1, top]."""
  m = m or n
  rng = np.random.default_rng(seed)
  u, _ = np.linalg.qr(rng.normal(size=(m, m)))
  v, _ = np.linalg.qr(rng.normal(size=(n, n)))
  s = np.geomspace(top, 1.0, min(m, n))
  return (u[:, :len(s)] * s) @ v[:, :len(s)].T


def test_linear_map_matches_numpy_cond():
  a = _matrix(12, 50.0)
  f = lambda x: jnp.asarray(a, jnp.float32) @ x
  xs = jnp.asarray(np.random.default_rng(1).normal(size=(5, 12)), jnp.float32)
  got = jacobian.log_condition_numbers(f, xs, chunk_size=2)
  assert got.shape == (5,)
  np.testing.assert_allclose(got, np.log(np.linalg.cond(a)), rtol=1e-4)


def test_nonlinear_map_matches_analytic_jacobian():
  a = _matrix(10, 20.0, seed=2)
  f = lambda x: jnp.tanh(jnp.asarray(a, jnp.float32) @ x)
  xs = np.random.default_rng(3).normal(size=(4, 10)) * 0.05
  expected = [np.log(np.linalg.cond((1 - np.tanh(a @ x) ** 2)[:, None] * a))
              for x in xs]
  got = jacobian.log_condition_numbers(f, jnp.asarray(xs, jnp.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  jac = jacobian.jacobians(f, jnp.asarray(xs, jnp.float32))
  assert jac.shape == (4, 10, 10)


@pytest.mark.slow
def test_realnvp_slogdet_equals_flow_log_det():
  model = flows.RealNVP(num_couplings=3, hidden=(16,), coupling='affine_softplus',
                        init_std=0.3)
  xs = jax.random.normal(jax.random.PRNGKey(0), (6, 8))
  params = model.init(jax.random.PRNGKey(1), xs)
  f = lambda x: model.apply(params, x)
  jac = jacobian.jacobians(f, xs, chunk_size=4)
  _, log_det = model.apply(params, xs, method=model.forward_and_log_det)
  assert float(jnp.std(log_det)) > 1e-2   # the test is not trivially 0 == 0
  np.testing.assert_allclose(jnp.linalg.slogdet(jac)[1], log_det, atol=1e-4)


@pytest.mark.slow
def test_chunked_equals_unchunked():
  a = jnp.asarray(_matrix(9, 30.0, seed=4), jnp.float32)
  f = lambda x: jnp.sin(a @ x) + x
  xs = jax.random.normal(jax.random.PRNGKey(2), (7, 9))
  whole = jacobian.log_condition_numbers(f, xs, chunk_size=None)
  for chunk in (1, 3, 7, 100):   # 3 does not divide 7: a remainder chunk
    np.testing.assert_allclose(
        jacobian.log_condition_numbers(f, xs, chunk_size=chunk), whole,
        rtol=1e-5)


def test_non_square_jacobian():
  a = _matrix(6, 10.0, m=4)
  f = lambda x: jnp.asarray(a, jnp.float32) @ x
  s = jacobian.singular_values(f, jnp.ones((2, 6)))
  np.testing.assert_allclose(s[0], np.linalg.svd(a, compute_uv=False), rtol=1e-5)


@pytest.mark.slow
def test_lanczos_matches_exact():
  a = jnp.asarray(_matrix(40, 100.0, seed=5), jnp.float32)
  f = lambda x: jnp.tanh(a @ x)
  xs = 0.05 * jax.random.normal(jax.random.PRNGKey(3), (3, 40))
  exact = jacobian.singular_values(f, xs)
  # Full Krylov dimension: exact up to float32 rounding.
  full = jacobian.lanczos_log_condition_numbers(f, xs, num_iters=40)
  np.testing.assert_allclose(full, jnp.log(exact[:, 0] / exact[:, -1]),
                             rtol=1e-3)
  # Few iterations: sigma_max already accurate, sigma_min an upper bound.
  few = jacobian.lanczos_singular_values(f, xs[0], num_iters=12)
  np.testing.assert_allclose(few[0], exact[0, 0], rtol=1e-3)
  assert few[-1] >= exact[0, -1] * (1 - 1e-4)


def test_lanczos_survives_breakdown():
  # Rank-2 map: the Krylov space is exhausted after two steps.
  a = np.zeros((6, 6))
  a[0, 0], a[1, 1] = 3.0, 2.0
  f = lambda x: jnp.asarray(a, jnp.float32) @ x
  s = jacobian.lanczos_singular_values(f, jnp.ones(6), num_iters=6)
  assert np.all(np.isfinite(s))
  np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), atol=1e-5)


def test_percentiles_match_numpy():
  values = np.random.default_rng(0).normal(size=33)
  np.testing.assert_allclose(jacobian.percentiles(values),
                             np.percentile(values, [0, 20, 40, 60, 80, 100]))
  assert jacobian.percentiles(values, qs=(50,)).shape == (1,)


@pytest.mark.parametrize('call, match', [
    (lambda: jacobian.log_condition_numbers(lambda x: x, jnp.ones(3)),
     r'\(B, n\), got shape \(3,\)'),
    (lambda: jacobian.log_condition_numbers(lambda x: x, jnp.ones((2, 3)),
                                            chunk_size=0), 'chunk_size >= 1'),
    (lambda: jacobian.jacobians(lambda x: jnp.sum(x), jnp.ones((2, 3))),
     r'vector \(m,\), got output shape \(\)'),
    (lambda: jacobian.percentiles(np.ones(3), qs=(10, 120)), r'\[0, 100\]'),
    (lambda: jacobian.lanczos_singular_values(lambda x: x, jnp.ones(3),
                                              num_iters=4), 'num_iters'),
])
def test_bad_input_raises(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_all_zero_jacobian_is_infinitely_ill_conditioned():
  # Documented: inf where the Jacobian is singular (not log 0 - log 0 = nan).
  xs = jnp.ones((2, 3))
  got = jacobian.log_condition_numbers(lambda x: 0.0 * x, xs)
  assert np.all(np.isposinf(got))
  rank_one = jacobian.log_condition_numbers(
      lambda x: jnp.array([1.0, 0.0, 0.0]) * jnp.sum(x), xs)
  assert np.all(np.isposinf(rank_one))
