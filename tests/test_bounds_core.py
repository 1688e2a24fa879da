"""Tests of infomax_jax.bounds.core: closed forms, numpy loops, finite differences.

Every expected value comes from somewhere other than the code under test:
the optimal critic of correlated Gaussians (known MI), plain Python loops over
a hand-made score matrix written from the papers' formulas
(``tests/bounds_reference.py``), finite differences (``check_grads``).
Properties every registry entry shares (jit, dtypes, huge scores, shape
errors) are tested over the registry in ``test_bounds_registry.py``.
"""

import math

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from infomax_jax import bounds
from tests import bounds_reference as ref

LOG_K_SLACK = 1e-5   # float32 rounding of log K


def _x64():
  """Float64 context manager across JAX versions."""
  if hasattr(jax, 'enable_x64'):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


# ------------------------------------------------ correlated Gaussians --

@pytest.mark.slow
@pytest.mark.parametrize('mi', [1.0, 2.0])
def test_dv_nwj_tuba_mine_match_true_mi_with_optimal_critic(mi):
  # At the optimal critic f* = log p(y|x)/p(y): DV(f*) = NWJ(f* + 1) =
  # TUBA(f*, a = 0) = I up to sampling error; the error is dominated by the
  # joint mean E_J[f*], whose standard error is estimated from the diagonals.
  rng = np.random.default_rng(0)
  k, d, nb = 2000, 10, 3
  s = ref.gaussian_scores(rng, k, d, mi, num_batches=nb)
  diag = np.stack([np.diag(s[:, :, b]) for b in range(nb)], axis=1)
  se = np.std(diag, ddof=1) / math.sqrt(k * nb)
  tol = 5.0 * se + 0.01
  s32 = jnp.asarray(s, jnp.float32)
  assert abs(float(bounds.dv(s32)) - mi) < tol
  assert abs(float(bounds.nwj(s32 + 1.0)) - mi) < tol
  assert abs(float(bounds.tuba(s32, 0.0)) - mi) < tol
  assert abs(float(bounds.mine(s32, bounds.mine_init(nb))[0]) - mi) < tol


@pytest.mark.slow
def test_infonce_never_exceeds_log_k_and_approaches_min_of_mi_and_log_k():
  rng = np.random.default_rng(1)
  d, mi = 10, 2.0
  means = {}
  for k, nb in ((8, 400), (64, 50), (2048, 2)):
    s = jnp.asarray(ref.gaussian_scores(rng, k, d, mi, num_batches=nb),
                    jnp.float32)
    per_batch = jax.vmap(bounds.infonce, in_axes=2)(s)
    assert float(jnp.max(per_batch)) <= math.log(k) + LOG_K_SLACK
    means[k] = float(jnp.mean(per_batch))
  # Monotone in K, below min(I, log K), close to I once log K >> I.
  assert means[8] < means[64] < means[2048]
  assert means[8] < min(mi, math.log(8))
  assert means[2048] == pytest.approx(mi, abs=0.05)

  # High MI: the log K ceiling binds; K = 8 comes close to log 8 from below.
  s = jnp.asarray(ref.gaussian_scores(rng, 8, d, 10.0, num_batches=400),
                  jnp.float32)
  per_batch = jax.vmap(bounds.infonce, in_axes=2)(s)
  assert float(jnp.max(per_batch)) <= math.log(8) + LOG_K_SLACK
  assert math.log(8) - 0.2 < float(jnp.mean(per_batch)) < math.log(8)


def test_infonce_is_at_most_log_k_for_any_scores():
  rng = np.random.default_rng(2)
  for k in (2, 3, 17):
    s = rng.normal(scale=30.0, size=(k, k)).astype(np.float32)
    s[np.diag_indices(k)] += 1e3            # perfectly separated positives
    assert float(bounds.infonce(s)) <= math.log(k) + LOG_K_SLACK
    assert float(bounds.infonce(s)) == pytest.approx(math.log(k), abs=1e-4)


@pytest.mark.slow
def test_independent_variables_give_zero():
  rng = np.random.default_rng(3)
  k, d = 512, 10
  # The optimal critic of independent x, y is f* = 0: every bound is 0.
  s0 = ref.gaussian_scores(rng, k, d, 1e-12, independent=True)[:, :, 0]
  for value in (bounds.dv(s0), bounds.nwj(s0 + 1.0), bounds.infonce(s0),
                bounds.tuba(s0, 0.0), bounds.interpolated(s0, 0.0, alpha=0.5),
                bounds.f_divergence_scores(s0 + 1.0, 'kl')):
    assert float(value) == pytest.approx(0.0, abs=1e-4)
  # A critic tuned for 2 nats, on independent data: a lower bound on I = 0
  # must come out <= 0 up to sampling error.
  s = ref.gaussian_scores(rng, k, d, 0.0, num_batches=4, independent=True,
                          critic_mi=2.0)
  s = jnp.asarray(s, jnp.float32)
  for fn in (bounds.dv, lambda t: bounds.nwj(t + 1.0), bounds.infonce):
    assert float(fn(s)) < 0.05


# ---------------------------------------------- hand-computed 3x3 values --

# name -> (library call on scores, numpy loop on one (K, K) matrix)
HAND = {
    'dv': (bounds.dv, ref.dv),
    'nwj': (bounds.nwj, ref.nwj),
    'infonce': (bounds.infonce, ref.infonce),
    'jsd': (bounds.jsd, ref.jsd),
    'tuba_scalar': (lambda s: bounds.tuba(s, 0.7),
                    lambda s: ref.tuba(s, [0.7] * 3)),
    'tuba': (lambda s: bounds.tuba(s, ref.A3), lambda s: ref.tuba(s, ref.A3)),
    'nwj_is_tuba_a1': (lambda s: bounds.tuba(s, 1.0), ref.nwj),
    'smile_1': (lambda s: bounds.smile(s, clip=1.0), lambda s: ref.smile(s, 1.0)),
    'smile_5': (lambda s: bounds.smile(s, clip=5.0), lambda s: ref.smile(s, 5.0)),
    'smile_inf': (lambda s: bounds.smile(s, clip=math.inf), ref.dv),
    'mine_first_step_is_dv': (
        lambda s: bounds.mine(s, bounds.mine_init(
            None if s.ndim == 2 else s.shape[2]))[0], ref.dv),
    **{f'interpolated_{alpha}': (
        (lambda alpha: lambda s: bounds.interpolated(s, ref.A3, alpha=alpha))(alpha),
        (lambda alpha: lambda s: ref.interpolated(s, ref.A3, alpha))(alpha))
       for alpha in (0.0, 0.01, 0.5, 0.99, 1.0)},
    'interpolated_0_is_tuba': (lambda s: bounds.interpolated(s, ref.A3, alpha=0.0),
                               lambda s: ref.tuba(s, ref.A3)),
}


@pytest.mark.parametrize('name', sorted(HAND))
def test_hand_computed_3x3(name):
  fn, expected = HAND[name]
  np.testing.assert_allclose(fn(jnp.asarray(ref.S3, jnp.float32)),
                             expected(ref.S3), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize('name', sorted(HAND))
def test_multi_location_is_mean_of_locations(name):
  fn, expected = HAND[name]
  s = np.stack([ref.S3, ref.S3.T[::-1] * 0.7 - 0.2], axis=2)      # (3, 3, 2)
  want = np.mean([expected(s[:, :, l]) for l in range(2)])
  np.testing.assert_allclose(fn(jnp.asarray(s, jnp.float32)), want,
                             rtol=2e-6, atol=2e-6)


# ---------------------------------------------------------- gradients --

def _random_scores(seed, k=4, scale=1.0):
  return np.random.default_rng(seed).normal(scale=scale, size=(k, k))


@pytest.mark.parametrize('fn', [bounds.dv, bounds.nwj, bounds.infonce, bounds.jsd],
                         ids=['dv', 'nwj', 'infonce', 'jsd'])
def test_check_grads(fn):
  with _x64():
    s = jnp.asarray(_random_scores(6))
    check_grads(jax.jit(fn), (s,), order=1, modes=('fwd', 'rev'))
    s3 = jnp.asarray(np.random.default_rng(7).normal(size=(3, 3, 2)))
    check_grads(jax.jit(fn), (s3,), order=1, modes=('rev',))


@pytest.mark.parametrize('alpha', [0.01, 0.5, 0.99])
def test_check_grads_baseline_bounds(alpha):
  with _x64():
    s = jnp.asarray(_random_scores(8, k=5))
    a = jnp.asarray(np.random.default_rng(9).normal(size=5))
    check_grads(jax.jit(bounds.tuba), (s, a), order=1, modes=('fwd', 'rev'))
    check_grads(jax.jit(lambda s, a: bounds.interpolated(s, a, alpha=alpha)),
                (s, a), order=1, modes=('fwd', 'rev'))


def test_interpolated_gradient_with_tied_second_largest():
  # The leave-one-out mean uses the top two entries of each column; a tie
  # between them must not halve a gradient (compared with float64 finite
  # differences of the numpy loop formula).
  s = ref.S3.copy()
  s[0, 1] = s[2, 1] = 0.8          # column 1: max 2.0 (row 1), tie at 0.8
  with _x64():
    grad = jax.jit(jax.grad(lambda t: bounds.interpolated(t, ref.A3, alpha=0.5)))(
        jnp.asarray(s))
  eps, fd = 1e-6, np.zeros_like(s)
  for i in range(3):
    for j in range(3):
      e = np.zeros_like(s)
      e[i, j] = eps
      fd[i, j] = (ref.interpolated(s + e, ref.A3, 0.5)
                  - ref.interpolated(s - e, ref.A3, 0.5)) / (2 * eps)
  np.testing.assert_allclose(grad, fd, atol=1e-6)


@pytest.mark.parametrize('clip', [1.0, 5.0, None])
def test_smile_gradient_is_jsd_gradient(clip):
  s = jnp.asarray(_random_scores(10, k=5, scale=3.0), jnp.float32)
  smile = lambda t: bounds.smile(t, clip=clip)
  np.testing.assert_allclose(jax.jit(jax.grad(smile))(s),
                             jax.jit(jax.grad(bounds.jsd))(s), rtol=1e-5,
                             atol=1e-7)
  jvp = lambda fn: jax.jit(lambda t: jax.jvp(fn, (t,), (jnp.ones_like(t),)))
  np.testing.assert_allclose(jvp(smile)(s)[1], jvp(bounds.jsd)(s)[1], rtol=1e-5)
  np.testing.assert_allclose(jvp(smile)(s)[0], ref.smile(np.asarray(s), clip),
                             rtol=1e-5)


def test_mine_gradient_follows_its_formula_over_two_steps():
  momentum, k = 0.9, 4
  s1 = _random_scores(11, k)
  s2 = _random_scores(12, k) + 0.8       # E_M[e^f] differs from step 1
  off = ~np.eye(k, dtype=bool)
  state = bounds.mine_init()
  v1, state = bounds.mine(jnp.asarray(s1, jnp.float32), state, momentum=momentum)
  ema1 = np.mean(np.exp(s1[off]))       # the first batch initialises the EMA
  np.testing.assert_allclose(np.exp(state.log_ema), ema1, rtol=1e-5)
  np.testing.assert_allclose(v1, ref.dv(s1), rtol=1e-5)

  # Step 2: the EMA is updated first, then used in the gradient's denominator.
  ema2 = momentum * ema1 + (1.0 - momentum) * np.mean(np.exp(s2[off]))
  assert abs(ema2 - np.mean(np.exp(s2[off]))) > 0.1   # not the batch mean
  (v2, state2), grad = jax.jit(jax.value_and_grad(
      lambda t: bounds.mine(t, state, momentum=momentum), has_aux=True))(
          jnp.asarray(s2, jnp.float32))
  want = np.where(off, -np.exp(s2) / (k * (k - 1)) / ema2, 0.0)
  want[np.diag_indices(k)] = 1.0 / k     # grad of E_J[f]
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(v2, ref.dv(s2), rtol=1e-5)
  np.testing.assert_allclose(np.exp(state2.log_ema), ema2, rtol=1e-5)
  assert int(state2.count) == 2


def test_mine_second_step_is_finite_at_1e4():
  state = bounds.mine_init()
  step = jax.jit(jax.value_and_grad(
      lambda s, st: bounds.mine(s, st, momentum=0.99), has_aux=True))
  for s in [np.zeros((5, 5))] + ref.huge_scores():
    (value, state), grad = step(jnp.asarray(s, jnp.float32), state)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.isfinite(state.log_ema)


# -------------------------------------------------------------- errors --

@pytest.mark.parametrize('fn', [bounds.tuba,
                                lambda s, a: bounds.interpolated(s, a, alpha=0.5)],
                         ids=['tuba', 'interpolated'])
@pytest.mark.parametrize('shape', [(4,), (3, 1), (2, 3)])
def test_bad_baseline_shape_raises(fn, shape):
  pattern = re_shape(shape)
  with pytest.raises(ValueError, match=rf'\(K,\) = \(3,\).*{pattern}'):
    fn(np.zeros((3, 3), np.float32), np.zeros(shape, np.float32))


def re_shape(shape):
  return str(tuple(shape)).replace('(', r'\(').replace(')', r'\)')


def test_bad_hyperparameters_raise():
  s = np.zeros((3, 3), np.float32)
  with pytest.raises(ValueError, match=r'alpha must lie in \[0, 1\], got 1.5'):
    bounds.interpolated(s, 0.0, alpha=1.5)
  with pytest.raises(ValueError, match='clip must be > 0 or None, got 0'):
    bounds.smile(s, clip=0)
  with pytest.raises(ValueError, match=r'momentum must lie in \[0, 1\), got 1.0'):
    bounds.mine(s, bounds.mine_init(), momentum=1.0)
  with pytest.raises(TypeError, match='state must be a MineState'):
    bounds.mine(s, (0.0, 0))


def test_bad_mine_state_raises():
  with pytest.raises(ValueError, match=r'\(2,\).*got \(\)'):
    bounds.mine(np.zeros((3, 3, 2), np.float32), bounds.mine_init())
