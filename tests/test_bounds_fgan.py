"""Tests of infomax_jax.bounds.fgan: closed forms, quadrature, Table 2, scipy.

The f-GAN bound at the optimal critic must equal the divergence between two
1-D Gaussians (closed form where one exists, adaptive quadrature of
int q f(p/q) otherwise); on a hand-made matrix it must equal Nowozin et al.'s
Table 2 as printed (``tests/bounds_reference.py``); ``critic_log_ratio`` must
invert the optimal critic (root finding); Lambert W must match scipy's.
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
from tests import bounds_reference as ref


def _x64():
  """Float64 context manager across JAX versions."""
  if hasattr(jax, 'enable_x64'):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


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


# name -> (f(u), closed form or None); the optimal critic is ref.V_STAR (and
# +-30 with the sign of log p/q for total variation).
_F = {
    'kl': (lambda u: u * math.log(u), _kl(P_MU, P_SIGMA, Q_MU, Q_SIGMA)),
    'reverse_kl': (lambda u: -math.log(u), _kl(Q_MU, Q_SIGMA, P_MU, P_SIGMA)),
    'pearson': (lambda u: (u - 1.0)**2, _chi2(P_MU, P_SIGMA, Q_MU, Q_SIGMA)),
    'neyman': (lambda u: (1.0 - u)**2 / u, _chi2(Q_MU, Q_SIGMA, P_MU, P_SIGMA)),
    'squared_hellinger': (
        lambda u: (math.sqrt(u) - 1.0)**2,
        2.0 - 2.0 * math.sqrt(2 * P_SIGMA * Q_SIGMA / (P_SIGMA**2 + Q_SIGMA**2))
        * math.exp(-(P_MU - Q_MU)**2 / (4 * (P_SIGMA**2 + Q_SIGMA**2)))),
    # No closed form used for these: quadrature of int q f(p/q).
    'total_variation': (lambda u: 0.5 * abs(u - 1.0), None),
    'jeffrey': (lambda u: (u - 1.0) * math.log(u), None),
    'jensen_shannon': (
        lambda u: -(u + 1.0) * math.log((1.0 + u) / 2.0) + u * math.log(u), None),
    'gan': (lambda u: u * math.log(u) - (u + 1.0) * math.log(u + 1.0), None),
}


def _v_star(divergence):
  if divergence == 'total_variation':
    return lambda t: 30.0 * np.sign(t)
  return ref.V_STAR[divergence]


def test_every_divergence_is_covered():
  assert set(_F) == set(bounds.F_DIVERGENCES)
  assert set(ref.V_STAR) == set(bounds.F_DIVERGENCES) - {'total_variation'}


@pytest.mark.parametrize('divergence', sorted(_F))
def test_f_divergence_at_optimal_critic_matches_closed_form(divergence):
  f, closed = _F[divergence]
  quad = _quad(f)
  if closed is not None:   # the closed form and the quadrature agree
    assert quad == pytest.approx(closed, rel=1e-6, abs=1e-9)
  # Many samples, drawn at the N midpoint quantiles of P and Q (a stratified
  # sample: its mean converges much faster than an i.i.d. one).
  n = 400_000
  u = (np.arange(n) + 0.5) / n
  x_p = stats.norm.ppf(u, P_MU, P_SIGMA)
  x_q = stats.norm.ppf(u, Q_MU, Q_SIGMA)
  v_star = _v_star(divergence)
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


@pytest.mark.parametrize('divergence', bounds.F_DIVERGENCES)
def test_hand_computed_3x3_is_table_2_as_printed(divergence):
  s = jnp.asarray(ref.S3, jnp.float32)
  np.testing.assert_allclose(bounds.f_divergence_scores(s, divergence),
                             ref.f_divergence_scores(ref.S3, divergence),
                             rtol=2e-6, atol=2e-6)
  s3 = np.stack([ref.S3, ref.S3.T[::-1] * 0.7 - 0.2], axis=2)      # (3, 3, 2)
  want = np.mean([ref.f_divergence_scores(s3[:, :, l], divergence)
                  for l in range(2)])
  np.testing.assert_allclose(
      bounds.f_divergence_scores(jnp.asarray(s3, jnp.float32), divergence),
      want, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize('divergence', bounds.F_DIVERGENCES)
def test_check_grads(divergence):
  fn = lambda s: bounds.f_divergence_scores(s, divergence)
  with _x64():
    s = jnp.asarray(np.random.default_rng(6).normal(size=(4, 4)))
    check_grads(jax.jit(fn), (s,), order=1, modes=('fwd', 'rev'))


# ----------------------------------------------------- critic_log_ratio --

@pytest.mark.parametrize('divergence', sorted(ref.V_STAR))
def test_critic_log_ratio_inverts_the_optimal_critic(divergence):
  t = np.linspace(-8.0, 8.0, 33)
  v = ref.V_STAR[divergence](t)
  with _x64():
    np.testing.assert_allclose(bounds.critic_log_ratio(jnp.asarray(v), divergence),
                               t, atol=1e-9)
  # Where v is not an optimal critic's output the map still agrees with the
  # root of v*(t) = v (brute force), except Pearson's clamp below v = -2.
  v = np.linspace(-1.9, 5.0, 15)
  want = [ref.log_ratio(vi, divergence) for vi in v]
  np.testing.assert_allclose(
      bounds.critic_log_ratio(jnp.asarray(v, jnp.float32), divergence), want,
      rtol=1e-5, atol=1e-5)


def test_critic_log_ratio_of_total_variation_raises():
  with pytest.raises(ValueError, match='total_variation critic does not determine'):
    bounds.critic_log_ratio(jnp.zeros(3), 'total_variation')
  assert np.isfinite(bounds.critic_log_ratio(jnp.array([-5.0]), 'pearson')).all()


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

def test_unknown_divergence_raises_listing_valid_names():
  with pytest.raises(ValueError, match="unknown divergence 'kl2'.*gan.*kl"):
    bounds.f_divergence(np.zeros(3), np.zeros(3), 'kl2')
  with pytest.raises(ValueError, match="unknown divergence 'hellinger'"):
    bounds.f_divergence_scores(np.zeros((3, 3)), 'hellinger')
  with pytest.raises(ValueError, match='t_q must have a floating dtype'):
    bounds.f_divergence(np.zeros(3), np.zeros(3, np.int32), 'kl')
  with pytest.raises(ValueError, match='must be non-empty'):
    bounds.f_divergence(np.zeros(0), np.zeros(3), 'kl')
