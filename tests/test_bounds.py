"""Tests for infomax_jax.bounds: closed forms, quadrature, numpy loops.

Every expected value comes from somewhere other than the code under test:
the optimal critic of correlated Gaussians (known MI), closed-form and
quadrature f-divergences between 1-D Gaussians, plain Python loops over a
hand-made score matrix written from the formulas of the papers, finite
differences (``check_grads``), scipy's Lambert W.
"""

import math

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest
from scipy import integrate
from scipy import special
from scipy import stats

from infomax_jax import bounds

LOG_K_SLACK = 1e-5   # float32 rounding of log K


def _x64():
  """Float64 context manager across JAX versions."""
  if hasattr(jax, 'enable_x64'):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


# ------------------------------------------------ correlated Gaussians --

def _mi_to_rho(mi, d):
  return math.sqrt(1.0 - math.exp(-2.0 * mi / d))


def _gaussian_scores(rng, k, d, mi, num_batches=1, independent=False,
                     critic_mi=None):
  """Optimal-critic scores on correlated Gaussian batches, shape (k, k, B).

  x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps; the score is the closed-form
  log density ratio f*(x, y) = log N(y; rho x, (1 - rho^2) I) - log N(y; 0, I)
  (float64 numpy). ``independent`` draws y independently of x;
  ``critic_mi`` evaluates the optimal critic of another MI level.
  """
  rho = _mi_to_rho(mi, d)
  rho_c = rho if critic_mi is None else _mi_to_rho(critic_mi, d)
  s2 = 1.0 - rho_c**2
  out = np.empty((k, k, num_batches))
  for b in range(num_batches):
    x = rng.standard_normal((k, d))
    eps = rng.standard_normal((k, d))
    y = eps if independent else rho * x + math.sqrt(1.0 - rho**2) * eps
    y2 = np.sum(y**2, axis=1)
    x2 = np.sum(x**2, axis=1)
    sq = y2[None, :] - 2.0 * rho_c * x @ y.T + rho_c**2 * x2[:, None]
    out[:, :, b] = -0.5 * d * math.log(s2) - sq / (2.0 * s2) + 0.5 * y2[None, :]
  return out


@pytest.mark.parametrize('mi', [1.0, 2.0])
def test_dv_nwj_tuba_match_true_mi_with_optimal_critic(mi):
  # At the optimal critic f* = log p(y|x)/p(y): DV(f*) = NWJ(f* + 1) =
  # TUBA(f*, a = 0) = I up to sampling error; the error is dominated by the
  # joint mean E_J[f*], whose standard error is estimated from the diagonals.
  rng = np.random.default_rng(0)
  k, d, nb = 2000, 10, 3
  s = _gaussian_scores(rng, k, d, mi, num_batches=nb)
  diag = np.stack([np.diag(s[:, :, b]) for b in range(nb)], axis=1)
  se = np.std(diag, ddof=1) / math.sqrt(k * nb)
  tol = 5.0 * se + 0.01
  s32 = jnp.asarray(s, jnp.float32)
  assert abs(float(bounds.dv(s32)) - mi) < tol
  assert abs(float(bounds.nwj(s32 + 1.0)) - mi) < tol
  assert abs(float(bounds.tuba(s32, 0.0)) - mi) < tol
  assert abs(float(bounds.mine(s32, bounds.mine_init(nb))[0]) - mi) < tol


def test_infonce_never_exceeds_log_k_and_approaches_min_of_mi_and_log_k():
  rng = np.random.default_rng(1)
  d, mi = 10, 2.0
  means = {}
  for k, nb in ((8, 400), (64, 50), (2048, 2)):
    s = jnp.asarray(_gaussian_scores(rng, k, d, mi, num_batches=nb),
                    jnp.float32)
    per_batch = jax.vmap(bounds.infonce, in_axes=2)(s)
    assert float(jnp.max(per_batch)) <= math.log(k) + LOG_K_SLACK
    means[k] = float(jnp.mean(per_batch))
  # Monotone in K, below min(I, log K), close to I once log K >> I.
  assert means[8] < means[64] < means[2048]
  assert means[8] < min(mi, math.log(8))
  assert means[2048] == pytest.approx(mi, abs=0.05)

  # High MI: the log K ceiling binds; K = 8 comes close to log 8 from below.
  s = jnp.asarray(_gaussian_scores(rng, 8, d, 10.0, num_batches=400),
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


def test_independent_variables_give_zero():
  rng = np.random.default_rng(3)
  k, d = 512, 10
  # The optimal critic of independent x, y is f* = 0: every bound is 0.
  s0 = _gaussian_scores(rng, k, d, 1e-12, independent=True)[:, :, 0]
  for value in (bounds.dv(s0), bounds.nwj(s0 + 1.0), bounds.infonce(s0),
                bounds.tuba(s0, 0.0), bounds.interpolated(s0, 0.0, 0.5),
                bounds.f_divergence_scores(s0 + 1.0, 'kl')):
    assert float(value) == pytest.approx(0.0, abs=1e-4)
  # A critic tuned for 2 nats, on independent data: a lower bound on I = 0
  # must come out <= 0 up to sampling error.
  s = _gaussian_scores(rng, k, d, 0.0, num_batches=4, independent=True,
                       critic_mi=2.0)
  s = jnp.asarray(s, jnp.float32)
  for fn in (bounds.dv, lambda t: bounds.nwj(t + 1.0), bounds.infonce):
    assert float(fn(s)) < 0.05


# ------------------------------------------------------- f-divergences --

# Q slightly wider than P: every divergence here is finite, and the E_P[(q/p)^2]
# of Neyman chi^2 keeps a light enough tail for a sample mean.
P_MU, P_SIGMA, Q_MU, Q_SIGMA = 0.0, 1.0, 0.5, 1.05


def _log_ratio(x):
  return (stats.norm.logpdf(x, P_MU, P_SIGMA)
          - stats.norm.logpdf(x, Q_MU, Q_SIGMA))


def _kl(m1, s1, m2, s2):
  return math.log(s2 / s1) + (s1**2 + (m1 - m2)**2) / (2 * s2**2) - 0.5


def _chi2(m1, s1, m2, s2):
  # Pearson chi^2(P||Q) = int p^2/q - 1 for Gaussians; finite iff 2 s2^2 > s1^2.
  return (s2**2 / (s1 * math.sqrt(2 * s2**2 - s1**2))
          * math.exp((m1 - m2)**2 / (2 * s2**2 - s1**2)) - 1.0)


def _quad(f):
  """int q(x) f(p(x)/q(x)) dx by adaptive quadrature.

  Over [-15, 15]: the mass of P and Q beyond is below 1e-45, and p/q stays
  positive in float64 there (it underflows further out).
  """
  def integrand(x):
    return stats.norm.pdf(x, Q_MU, Q_SIGMA) * f(math.exp(_log_ratio(x)))
  return integrate.quad(integrand, -15.0, 15.0, epsabs=1e-12, limit=200)[0]


# name -> (f(u), optimal critic output v*(u) = g_f^{-1}(f'(u)), closed form)
_F = {
    'kl': (lambda u: u * math.log(u), lambda lu: 1.0 + lu,
           _kl(P_MU, P_SIGMA, Q_MU, Q_SIGMA)),
    'reverse_kl': (lambda u: -math.log(u), lambda lu: lu,
                   _kl(Q_MU, Q_SIGMA, P_MU, P_SIGMA)),
    'pearson': (lambda u: (u - 1.0)**2, lambda lu: 2.0 * (np.exp(lu) - 1.0),
                _chi2(P_MU, P_SIGMA, Q_MU, Q_SIGMA)),
    'neyman': (lambda u: (1.0 - u)**2 / u, lambda lu: 2.0 * lu,
               _chi2(Q_MU, Q_SIGMA, P_MU, P_SIGMA)),
    'squared_hellinger': (
        lambda u: (math.sqrt(u) - 1.0)**2, lambda lu: 0.5 * lu,
        2.0 - 2.0 * math.sqrt(2 * P_SIGMA * Q_SIGMA / (P_SIGMA**2 + Q_SIGMA**2))
        * math.exp(-(P_MU - Q_MU)**2 / (4 * (P_SIGMA**2 + Q_SIGMA**2)))),
    # No closed form used for these: quadrature of int q f(p/q).
    'total_variation': (lambda u: 0.5 * abs(u - 1.0),
                        lambda lu: 30.0 * np.sign(lu), None),
    'jeffrey': (lambda u: (u - 1.0) * math.log(u),
                lambda lu: lu + 1.0 - np.exp(-lu), None),
    'jensen_shannon': (
        lambda u: -(u + 1.0) * math.log((1.0 + u) / 2.0) + u * math.log(u),
        lambda lu: lu, None),
    'gan': (lambda u: u * math.log(u) - (u + 1.0) * math.log(u + 1.0),
            lambda lu: lu, None),
}


def test_every_divergence_is_covered():
  assert set(_F) == set(bounds.F_DIVERGENCES)


@pytest.mark.parametrize('divergence', sorted(_F))
def test_f_divergence_at_optimal_critic_matches_closed_form(divergence):
  f, v_star, closed = _F[divergence]
  quad = _quad(f)
  if closed is not None:   # the closed form and the quadrature agree
    assert quad == pytest.approx(closed, rel=1e-6, abs=1e-9)
  # Many samples, drawn at the N midpoint quantiles of P and Q (a stratified
  # sample: its mean converges much faster than an i.i.d. one).
  n = 400_000
  u = (np.arange(n) + 0.5) / n
  x_p = stats.norm.ppf(u, P_MU, P_SIGMA)
  x_q = stats.norm.ppf(u, Q_MU, Q_SIGMA)
  value = bounds.f_divergence(v_star(_log_ratio(x_p)).astype(np.float32),
                              v_star(_log_ratio(x_q)).astype(np.float32),
                              divergence)
  # Relative error <= 3e-5 for all but Neyman (6e-4: its tail beyond the
  # extreme quantiles).
  assert float(value) == pytest.approx(quad, rel=1e-3)


def test_f_divergence_kl_with_iid_samples_within_sampling_error():
  rng = np.random.default_rng(4)
  n = 200_000
  t_p = 1.0 + _log_ratio(rng.normal(P_MU, P_SIGMA, n))
  t_q = 1.0 + _log_ratio(rng.normal(Q_MU, Q_SIGMA, n))
  se = math.sqrt(np.var(t_p) / n + np.var(np.exp(t_q - 1.0)) / n)
  value = float(bounds.f_divergence(t_p, t_q, 'kl'))
  assert abs(value - _kl(P_MU, P_SIGMA, Q_MU, Q_SIGMA)) < 4.0 * se


@pytest.mark.parametrize('divergence', bounds.F_DIVERGENCES)
def test_f_divergence_scores_is_f_divergence_of_diagonal_vs_off_diagonal(
    divergence):
  s = np.random.default_rng(5).normal(size=(5, 5)).astype(np.float32)
  off = s[~np.eye(5, dtype=bool)]
  expected = bounds.f_divergence(np.diag(s), off, divergence)
  np.testing.assert_allclose(bounds.f_divergence_scores(s, divergence),
                             expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------- hand-computed 3x3 values --

S3 = np.array([[1.2, -0.4, 0.3],
               [0.5, 2.0, -1.1],
               [-0.7, 0.8, 0.6]])
A3 = np.array([0.3, -0.2, 0.9])     # a log-baseline a(y_j), one per column
OFF3 = [(i, j) for i in range(3) for j in range(3) if i != j]


def _np_joint(s):
  return sum(s[i, i] for i in range(len(s))) / len(s)


def _np_dv(s):
  return _np_joint(s) - math.log(sum(math.exp(s[i, j]) for i, j in OFF3) / 6)


def _np_nwj(s):
  return _np_joint(s) - sum(math.exp(s[i, j] - 1.0) for i, j in OFF3) / 6


def _np_infonce(s):
  k = len(s)
  rows = [s[i, i] - math.log(sum(math.exp(s[i, j]) for j in range(k)))
          for i in range(k)]
  return math.log(k) + sum(rows) / k


def _softplus(z):
  return math.log1p(math.exp(z))


def _np_jsd(s):
  return (-sum(_softplus(-s[i, i]) for i in range(3)) / 3
          - sum(_softplus(s[i, j]) for i, j in OFF3) / 6)


def _np_tuba(s, a):
  return (1.0 + sum(s[i, i] - a[i] for i in range(3)) / 3
          - sum(math.exp(s[i, j] - a[j]) for i, j in OFF3) / 6)


def _np_interpolated(s, a, alpha):
  # Docstring formula: m_{-i}(y_j) = mean_{k != i} e^{f(x_k, y_j)},
  # b_ij = alpha m_{-i}(y_j) + (1 - alpha) e^{a(y_j)},
  # I = 1 + E_{i!=j}[f_jj - log b_ij] - E_{i!=j}[e^{f_ij} / b_jj].
  def b(i, j):
    m = sum(math.exp(s[k, j]) for k in range(3) if k != i) / 2
    return alpha * m + (1.0 - alpha) * math.exp(a[j])
  joint = sum(s[j, j] - math.log(b(i, j)) for i, j in OFF3) / 6
  marg = sum(math.exp(s[i, j]) / b(j, j) for i, j in OFF3) / 6
  return 1.0 + joint - marg


def _np_smile(s, tau):
  clip = (lambda z: z) if tau is None else (lambda z: min(max(z, -tau), tau))
  return _np_joint(s) - math.log(
      sum(math.exp(clip(s[i, j])) for i, j in OFF3) / 6)


# Nowozin et al. (2016) Table 2 as printed: output activation g_f and the
# conjugate f* (not the simplified compositions used by the library).
_TABLE2 = {
    'total_variation': (lambda v: 0.5 * math.tanh(v), lambda t: t),
    'kl': (lambda v: v, lambda t: math.exp(t - 1.0)),
    'reverse_kl': (lambda v: -math.exp(-v), lambda t: -1.0 - math.log(-t)),
    'pearson': (lambda v: v, lambda t: t * t / 4.0 + t),
    'neyman': (lambda v: 1.0 - math.exp(-v),
               lambda t: 2.0 - 2.0 * math.sqrt(1.0 - t)),
    'squared_hellinger': (lambda v: 1.0 - math.exp(-v),
                          lambda t: t / (1.0 - t)),
    'jeffrey': (lambda v: v, lambda t: (
        special.lambertw(math.exp(1.0 - t)).real
        + 1.0 / special.lambertw(math.exp(1.0 - t)).real + t - 2.0)),
    'jensen_shannon': (lambda v: math.log(2.0) - math.log1p(math.exp(-v)),
                       lambda t: -math.log(2.0 - math.exp(t))),
    'gan': (lambda v: -math.log1p(math.exp(-v)),
            lambda t: -math.log(1.0 - math.exp(t))),
}


def _np_f_divergence_scores(s, divergence):
  g, conj = _TABLE2[divergence]
  return (sum(g(s[i, i]) for i in range(3)) / 3
          - sum(conj(g(s[i, j])) for i, j in OFF3) / 6)


def _f_scores(name):
  return lambda s: bounds.f_divergence_scores(s, name)


# name -> (library call on scores, numpy loop on a (3, 3) matrix)
HAND = {
    'dv': (bounds.dv, _np_dv),
    'nwj': (bounds.nwj, _np_nwj),
    'infonce': (bounds.infonce, _np_infonce),
    'jsd': (bounds.jsd, _np_jsd),
    'tuba_scalar': (lambda s: bounds.tuba(s, 0.7),
                    lambda s: _np_tuba(s, [0.7] * 3)),
    'tuba': (lambda s: bounds.tuba(s, A3), lambda s: _np_tuba(s, A3)),
    'nwj_is_tuba_a1': (lambda s: bounds.tuba(s, 1.0), _np_nwj),
    'smile_1': (lambda s: bounds.smile(s, 1.0), lambda s: _np_smile(s, 1.0)),
    'smile_5': (lambda s: bounds.smile(s, 5.0), lambda s: _np_smile(s, 5.0)),
    'smile_inf': (lambda s: bounds.smile(s, math.inf), _np_dv),
    'mine_first_step_is_dv': (
        lambda s: bounds.mine(s, bounds.mine_init(
            None if s.ndim == 2 else s.shape[2]))[0], _np_dv),
    **{f'interpolated_{alpha}': (
        (lambda alpha: lambda s: bounds.interpolated(s, A3, alpha))(alpha),
        (lambda alpha: lambda s: _np_interpolated(s, A3, alpha))(alpha))
       for alpha in (0.0, 0.01, 0.5, 0.99, 1.0)},
    'interpolated_0_is_tuba': (lambda s: bounds.interpolated(s, A3, 0.0),
                               lambda s: _np_tuba(s, A3)),
    **{f'f_{name}': (
        _f_scores(name),
        (lambda name: lambda s: _np_f_divergence_scores(s, name))(name))
       for name in bounds.F_DIVERGENCES},
}


@pytest.mark.parametrize('name', sorted(HAND))
def test_hand_computed_3x3(name):
  fn, expected = HAND[name]
  np.testing.assert_allclose(fn(jnp.asarray(S3, jnp.float32)), expected(S3),
                             rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize('name', sorted(HAND))
def test_multi_location_is_mean_of_locations(name):
  fn, expected = HAND[name]
  s = np.stack([S3, S3.T[::-1] * 0.7 - 0.2], axis=2)      # (3, 3, 2)
  want = np.mean([expected(s[:, :, l]) for l in range(2)])
  np.testing.assert_allclose(fn(jnp.asarray(s, jnp.float32)), want,
                             rtol=2e-6, atol=2e-6)


# ---------------------------------------------------------- gradients --

def _random_scores(seed, k=4, scale=1.0):
  return np.random.default_rng(seed).normal(scale=scale, size=(k, k))


GRAD_FNS = {
    'dv': bounds.dv,
    'nwj': bounds.nwj,
    'infonce': bounds.infonce,
    'jsd': bounds.jsd,
    **{f'f_{name}': _f_scores(name) for name in bounds.F_DIVERGENCES},
}


@pytest.mark.parametrize('name', sorted(GRAD_FNS))
def test_check_grads(name):
  with _x64():
    s = jnp.asarray(_random_scores(6))
    check_grads(jax.jit(GRAD_FNS[name]), (s,), order=1, modes=('fwd', 'rev'))
    s3 = jnp.asarray(np.random.default_rng(7).normal(size=(3, 3, 2)))
    check_grads(jax.jit(GRAD_FNS[name]), (s3,), order=1, modes=('rev',))


@pytest.mark.parametrize('alpha', [0.01, 0.5, 0.99])
def test_check_grads_baseline_bounds(alpha):
  with _x64():
    s = jnp.asarray(_random_scores(8, k=5))
    a = jnp.asarray(np.random.default_rng(9).normal(size=5))
    check_grads(jax.jit(bounds.tuba), (s, a), order=1, modes=('fwd', 'rev'))
    check_grads(jax.jit(lambda s, a: bounds.interpolated(s, a, alpha)), (s, a),
                order=1, modes=('fwd', 'rev'))


def test_interpolated_gradient_with_tied_second_largest():
  # The leave-one-out mean uses the top two entries of each column; a tie
  # between them must not halve a gradient (compared with float64 finite
  # differences of the numpy loop formula).
  s = S3.copy()
  s[0, 1] = s[2, 1] = 0.8          # column 1: max 2.0 (row 1), tie at 0.8
  with _x64():
    grad = jax.jit(jax.grad(lambda t: bounds.interpolated(t, A3, 0.5)))(
        jnp.asarray(s))
  eps, fd = 1e-6, np.zeros_like(s)
  for i in range(3):
    for j in range(3):
      e = np.zeros_like(s)
      e[i, j] = eps
      fd[i, j] = (_np_interpolated(s + e, A3, 0.5)
                  - _np_interpolated(s - e, A3, 0.5)) / (2 * eps)
  np.testing.assert_allclose(grad, fd, atol=1e-6)


@pytest.mark.parametrize('clip', [1.0, 5.0, None])
def test_smile_gradient_is_jsd_gradient(clip):
  s = jnp.asarray(_random_scores(10, k=5, scale=3.0), jnp.float32)
  smile = lambda t: bounds.smile(t, clip)
  np.testing.assert_allclose(jax.jit(jax.grad(smile))(s),
                             jax.jit(jax.grad(bounds.jsd))(s), rtol=1e-5,
                             atol=1e-7)
  jvp = lambda fn: jax.jit(lambda t: jax.jvp(fn, (t,), (jnp.ones_like(t),)))
  np.testing.assert_allclose(jvp(smile)(s)[1], jvp(bounds.jsd)(s)[1], rtol=1e-5)
  np.testing.assert_allclose(jvp(smile)(s)[0], _np_smile_k(np.asarray(s), clip),
                             rtol=1e-5)


def test_mine_gradient_follows_its_formula_over_two_steps():
  momentum, k = 0.9, 4
  s1 = _random_scores(11, k)
  s2 = _random_scores(12, k) + 0.8       # E_M[e^f] differs from step 1
  off = ~np.eye(k, dtype=bool)
  state = bounds.mine_init()
  v1, state = bounds.mine(jnp.asarray(s1, jnp.float32), state, momentum)
  ema1 = np.mean(np.exp(s1[off]))       # the first batch initialises the EMA
  np.testing.assert_allclose(np.exp(state.log_ema), ema1, rtol=1e-5)
  np.testing.assert_allclose(v1, _np_dv_k(s1), rtol=1e-5)

  # Step 2: the EMA is updated first, then used in the gradient's denominator.
  ema2 = momentum * ema1 + (1.0 - momentum) * np.mean(np.exp(s2[off]))
  assert abs(ema2 - np.mean(np.exp(s2[off]))) > 0.1   # not the batch mean
  (v2, state2), grad = jax.jit(jax.value_and_grad(
      lambda t: bounds.mine(t, state, momentum), has_aux=True))(
          jnp.asarray(s2, jnp.float32))
  want = np.where(off, -np.exp(s2) / (k * (k - 1)) / ema2, 0.0)
  want[np.diag_indices(k)] = 1.0 / k     # grad of E_J[f]
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(v2, _np_dv_k(s2), rtol=1e-5)
  np.testing.assert_allclose(np.exp(state2.log_ema), ema2, rtol=1e-5)
  assert int(state2.count) == 2


def _np_smile_k(s, tau):
  k = len(s)
  clip = (lambda z: z) if tau is None else (lambda z: min(max(z, -tau), tau))
  off = [math.exp(clip(s[i, j])) for i in range(k) for j in range(k) if i != j]
  return np.trace(s) / k - math.log(sum(off) / len(off))


def _np_dv_k(s):
  k = len(s)
  off = [math.exp(s[i, j]) for i in range(k) for j in range(k) if i != j]
  return np.trace(s) / k - math.log(sum(off) / len(off))


# ------------------------------------------------------ jit and dtypes --

ALL_FNS = {
    **GRAD_FNS,
    'tuba': lambda s: bounds.tuba(s, jnp.linspace(-1.0, 1.0, s.shape[0])),
    'interpolated': lambda s: bounds.interpolated(
        s, jnp.linspace(-1.0, 1.0, s.shape[0]), 0.5),
    'smile': lambda s: bounds.smile(s, 5.0),
    'mine': lambda s: bounds.mine(s, bounds.mine_init())[0],
}


@pytest.mark.parametrize('name', sorted(ALL_FNS))
def test_jit_equals_eager(name):
  s = jnp.asarray(_random_scores(13, k=6, scale=2.0), jnp.float32)
  np.testing.assert_allclose(jax.jit(ALL_FNS[name])(s), ALL_FNS[name](s),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16])
def test_low_precision_inputs_are_computed_in_float32(dtype):
  s = jnp.asarray(_random_scores(14, k=6, scale=2.0), dtype)
  for name, fn in ALL_FNS.items():
    value = fn(s)
    assert value.dtype == jnp.float32, name
    np.testing.assert_allclose(value, fn(s.astype(jnp.float32)), rtol=1e-5,
                               atol=1e-5, err_msg=name)


def _huge_scores():
  rng = np.random.default_rng(15)
  random = 1e4 * rng.choice([-1.0, 1.0], size=(5, 5))
  separated = np.where(np.eye(5, dtype=bool), 1e4, -1e4)
  return [random, separated, -separated, np.full((5, 5), 1e4),
          np.full((5, 5), -1e4)]


@pytest.mark.parametrize('name', sorted(ALL_FNS))
def test_float32_scores_of_1e4_give_finite_values_and_gradients(name):
  fn = jax.jit(jax.value_and_grad(ALL_FNS[name]))
  for s in _huge_scores():
    value, grad = fn(jnp.asarray(s, jnp.float32))
    assert np.isfinite(value), (name, s)
    assert np.all(np.isfinite(grad)), (name, s)


def test_mine_second_step_is_finite_at_1e4():
  state = bounds.mine_init()
  step = jax.jit(jax.value_and_grad(lambda s, st: bounds.mine(s, st, 0.99),
                                    has_aux=True))
  for s in [np.zeros((5, 5))] + _huge_scores():
    (value, state), grad = step(jnp.asarray(s, jnp.float32), state)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.isfinite(state.log_ema)


# ------------------------------------------------------------ Lambert W --

def test_lambertw_exp_matches_scipy():
  z = np.linspace(-40.0, 60.0, 401)
  want = special.lambertw(np.exp(z)).real
  with _x64():
    # Below z = -20 the library returns e^z, whose relative error is
    # W(e^z)/e^z - 1 ~ e^z < 2.1e-9 (exact in float32).
    np.testing.assert_allclose(bounds.lambertw_exp(jnp.asarray(z)), want,
                               rtol=3e-9, atol=1e-300)
    check_grads(jax.jit(bounds.lambertw_exp), (jnp.asarray(z[::20]),), order=1,
                modes=('fwd', 'rev'))
  np.testing.assert_allclose(bounds.lambertw_exp(jnp.asarray(z, jnp.float32)),
                             want, rtol=2e-6, atol=1e-30)


def test_lambertw_exp_far_beyond_exp_overflow():
  z = np.array([1e3, 1e4, 1e6], np.float32)
  w = np.asarray(bounds.lambertw_exp(z), np.float64)
  np.testing.assert_allclose(w + np.log(w), z, rtol=1e-6)   # W e^W = e^z


# -------------------------------------------------------------- errors --

SCORE_FNS = {
    'dv': bounds.dv,
    'nwj': bounds.nwj,
    'infonce': bounds.infonce,
    'jsd': bounds.jsd,
    'tuba': lambda s: bounds.tuba(s, 0.0),
    'interpolated': lambda s: bounds.interpolated(s, 0.0, 0.5),
    'smile': bounds.smile,
    'mine': lambda s: bounds.mine(s, bounds.mine_init()),
    'f_divergence_scores': lambda s: bounds.f_divergence_scores(s, 'kl'),
}


@pytest.mark.parametrize('name', sorted(SCORE_FNS))
@pytest.mark.parametrize('shape, pattern', [
    ((3, 4), r'square.*\(3, 4\)'),
    ((4,), r'\(K, K\) or \(K, K, L\).*rank 1.*\(4,\)'),
    ((2, 2, 2, 2), r'\(K, K\) or \(K, K, L\).*rank 4'),
    ((1, 1), r'K >= 2.*K = 1'),
])
def test_bad_shapes_raise(name, shape, pattern):
  with pytest.raises(ValueError, match=pattern):
    SCORE_FNS[name](np.zeros(shape, np.float32))


@pytest.mark.parametrize('name', sorted(SCORE_FNS))
def test_integer_scores_raise(name):
  with pytest.raises(ValueError, match='floating dtype.*int32'):
    SCORE_FNS[name](np.zeros((3, 3), np.int32))


def test_unknown_divergence_and_bound_name_raise_listing_valid_names():
  with pytest.raises(ValueError, match="unknown divergence 'kl2'.*gan.*kl"):
    bounds.f_divergence(np.zeros(3), np.zeros(3), 'kl2')
  with pytest.raises(ValueError, match="unknown divergence 'hellinger'"):
    bounds.f_divergence_scores(np.zeros((3, 3)), 'hellinger')
  with pytest.raises(ValueError, match="unknown bound 'nce'.*dv.*infonce"):
    bounds.get('nce')
  for name, fn in bounds.BOUNDS.items():
    assert bounds.get(name) is fn


@pytest.mark.parametrize('fn', [bounds.tuba,
                                lambda s, a: bounds.interpolated(s, a, 0.5)])
@pytest.mark.parametrize('shape', [(4,), (3, 1), (2, 3)])
def test_bad_baseline_shape_raises(fn, shape):
  with pytest.raises(ValueError, match=rf'\(K,\) = \(3,\).*{re_shape(shape)}'):
    fn(np.zeros((3, 3), np.float32), np.zeros(shape, np.float32))


def re_shape(shape):
  return str(tuple(shape)).replace('(', r'\(').replace(')', r'\)')


def test_bad_mine_state_raises():
  with pytest.raises(ValueError, match=r'\(2,\).*got \(\)'):
    bounds.mine(np.zeros((3, 3, 2), np.float32), bounds.mine_init())
