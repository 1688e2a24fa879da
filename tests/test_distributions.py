"""Tests for infomax_jax.distributions: sampler statistics and closed-form MI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from infomax_jax import distributions as D

# Samplers are jit-compiled once per (task, n): tests share tasks and n so that
# the suite compiles few of them (compilation dominates on a shared CPU).
N = 40_000
SPARSE = D.gaussian_sparse(3, 2, 2, -0.7)
DENSE = D.gaussian_dense(2, 3, 0.4)


def _sample(task, n=N, seed=0):
  x, y = task.sample(jax.random.key(seed), n)
  return np.asarray(x, np.float64), np.asarray(y, np.float64)


def _monte_carlo_mi(logp_joint, logp_x, logp_y, x, y):
  """Mean and standard error of log p(x, y) - log p(x) - log p(y)."""
  pmi = logp_joint(np.concatenate([x, y], 1)) - logp_x(x) - logp_y(y)
  return pmi.mean(), pmi.std() / np.sqrt(pmi.size)


# ---------------------------------------------------------------- Gaussian --

def test_sparse_and_dense_closed_forms():
  rho = 0.8
  task = D.gaussian_sparse(5, 4, 3, rho)
  np.testing.assert_allclose(task.mutual_information,
                             -1.5 * np.log(1 - rho ** 2), rtol=1e-12)
  # Equicorrelation log-determinant L(d) = (d-1) log(1-r) + log(1+(d-1) r).
  r, dx, dy = 0.5, 3, 7
  logdet = lambda d: (d - 1) * np.log(1 - r) + np.log(1 + (d - 1) * r)
  np.testing.assert_allclose(D.gaussian_dense(dx, dy, r).mutual_information,
                             0.5 * (logdet(dx) + logdet(dy) - logdet(dx + dy)),
                             rtol=1e-12)
  # 1-D, rho = 0.75: the reference value.
  np.testing.assert_allclose(D.gaussian_sparse(1, 1, 1, 0.75).mutual_information,
                             0.4133, atol=1e-4)


@pytest.mark.parametrize('task,cov', [
    (SPARSE, D.sparse_correlation(3, 2, 2, -0.7)),
    (DENSE, D.dense_correlation(2, 3, 0.4)),
], ids=['sparse', 'dense'])
def test_gaussian_sampler_covariance_and_mi(task, cov):
  x, y = _sample(task)
  assert x.shape == (N, task.dim_x) and y.shape == (N, task.dim_y)
  z = np.concatenate([x, y], 1)
  np.testing.assert_allclose(z.mean(0), 0.0, atol=0.03)
  np.testing.assert_allclose(np.cov(z.T), cov, atol=0.03)
  mc, se = _monte_carlo_mi(
      stats.multivariate_normal(cov=cov).logpdf,
      stats.multivariate_normal(cov=cov[:task.dim_x, :task.dim_x]).logpdf,
      stats.multivariate_normal(cov=cov[task.dim_x:, task.dim_x:]).logpdf, x, y)
  assert abs(mc - task.mutual_information) < 5 * se + 1e-3


def test_sampler_is_pure_and_seeded():
  a, b, c = (SPARSE.sample(jax.random.key(k), N) for k in (3, 3, 4))
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.allclose(a[0], c[0])


# --------------------------------------------------------------- Student-t --

@pytest.mark.parametrize('dim_x,dim_y,dof,n_int,rho', [
    (1, 1, 1.0, 1, 0.6),      # Cauchy tails, correlated dispersion
    (3, 2, 5.0, 0, 0.0),      # no correlation: the MI is the correction alone
    (2, 2, 1.0, 0, 0.0),      # BMI student-identity 2x2, dof 1
])
def test_student_t_mi_matches_monte_carlo_and_marginals(dim_x, dim_y, dof,
                                                       n_int, rho):
  task = D.student_t_sparse(dim_x, dim_y, dof, n_int, rho)
  cov = D.sparse_correlation(dim_x, dim_y, n_int, rho)
  x, y = _sample(task, seed=1)
  mc, se = _monte_carlo_mi(
      stats.multivariate_t(shape=cov, df=dof).logpdf,
      stats.multivariate_t(shape=cov[:dim_x, :dim_x], df=dof).logpdf,
      stats.multivariate_t(shape=cov[dim_x:, dim_x:], df=dof).logpdf, x, y)
  assert abs(mc - task.mutual_information) < 5 * se + 2e-3, (mc, se, task)
  # Each coordinate is a univariate t_nu (unit dispersion).
  for column in (x[:5000, 0], y[:5000, -1]):
    assert stats.kstest(column, stats.t(df=dof).cdf).pvalue > 1e-3


def test_student_t_correction_limits():
  # Positive, decreasing in nu, and -> 0 as nu -> inf (Gaussian limit).
  values = [D.student_t_correction(nu, 2, 3) for nu in (1, 3, 10, 100, 1e4)]
  assert all(v > 0 for v in values)
  assert all(a > b for a, b in zip(values, values[1:]))
  assert values[-1] < 1e-7
  assert 0 <= D.student_t_correction(1e7, 2, 3) < 1e-9
  np.testing.assert_allclose(D.student_t_correction(1.0, 1, 1), 0.22417, atol=1e-5)
  with pytest.raises(ValueError, match='dof'):
    D.student_t_correction(0.0, 1, 1)


# -------------------------------------------------------------- transforms --

def test_transforms_are_strictly_increasing_elementwise():
  # |x| <= 4: beyond ~5.3 the float32 normal CDF rounds to 1.
  grid = np.linspace(-4.0, 4.0, 2001, dtype=np.float32)
  values = jax.jit(lambda g: [D.TRANSFORMS[n](g) for n in
                              ('normal_cdf', 'half_cube', 'asinh', 'wiggly')])(grid)
  for name, v in zip(('normal_cdf', 'half_cube', 'asinh', 'wiggly'), values):
    assert np.all(np.diff(np.asarray(v, np.float64)) > 0), name
  # Wiggly's slope is 1 + 0.4 cos(x) + 0.4 cos(2x + 1) >= 0.2.
  slope = np.diff(np.asarray(values[3], np.float64)) / np.diff(grid)
  assert slope.min() > 0.2 - 1e-2


def test_spiral_preserves_norm_and_inverts():
  x = jax.random.normal(jax.random.key(0), (500, 5))
  z = D.spiral(x, speed=0.5)
  np.testing.assert_allclose(jnp.linalg.norm(z, axis=1),
                             jnp.linalg.norm(x, axis=1), rtol=1e-5)
  assert float(jnp.max(jnp.abs(z - x))) > 0.5
  np.testing.assert_allclose(D.spiral(z, speed=-0.5), x, atol=1e-4)
  with pytest.raises(ValueError, match='d >= 2'):
    D.spiral(x[:, :1])


def test_transformed_tasks_keep_mi_and_margins():
  base = SPARSE
  task = D.transform(base, 'normal_cdf', 'x')
  assert task.mutual_information == base.mutual_information
  assert (task.dim_x, task.dim_y) == (3, 2)
  x, y = _sample(task)
  x0, y0 = _sample(base)
  np.testing.assert_allclose(y, y0)                  # y untouched
  np.testing.assert_allclose(x, stats.norm.cdf(x0), atol=1e-5)
  assert stats.kstest(x[:, 0], 'uniform').pvalue > 1e-3


def test_transform_errors():
  base = D.gaussian_sparse(1, 3, 1, 0.5)
  with pytest.raises(ValueError, match='unknown transform .*valid transforms are'):
    D.transform(base, 'cube')
  with pytest.raises(ValueError, match='spiral needs dimension >= 2'):
    D.transform(base, 'spiral', 'x')
  D.transform(base, 'spiral', 'y')                   # dim_y = 3 is fine
  with pytest.raises(ValueError, match="apply_to"):
    D.transform(base, 'asinh', 'z')


def test_bad_parameters_raise():
  with pytest.raises(ValueError, match='positive definite'):
    D.gaussian_dense(2, 2, -0.5)
  with pytest.raises(ValueError, match=r'correlation must lie in \(-1, 1\)'):
    D.gaussian_sparse(2, 2, 1, 1.0)
  with pytest.raises(ValueError, match='n_interacting'):
    D.gaussian_sparse(2, 3, 3, 0.5)
  with pytest.raises(ValueError, match='dim_x'):
    D.multivariate_normal(np.eye(3), 3)
  with pytest.raises(ValueError, match='unknown task'):
    D.get_task('normal-7x7')
  with pytest.raises(ValueError, match='positive int'):
    D.get_task('normal-1x1-0.75').sample(jax.random.key(0), 0)


# ------------------------------------------------------------------- suite --

def test_suite_spans_dimensions_and_mi():
  tasks = D.suite()
  assert len(tasks) >= 10
  dims = [max(t.dim_x, t.dim_y) for t in tasks]
  mis = [t.mutual_information for t in tasks]
  assert min(dims) == 1 and max(dims) == 25
  assert 0.25 < min(mis) < 0.5 and 2.5 < max(mis) < 3.5
  assert len({t.name for t in tasks}) == len(tasks)
  for t in tasks:
    # Shapes by tracing alone (compiling 15 samplers is slow on a shared CPU;
    # the samplers themselves are exercised by the tests above).
    x, y = jax.eval_shape(lambda k, t=t: t.sampler(k, 64), jax.random.key(0))
    assert x.shape == (64, t.dim_x) and y.shape == (64, t.dim_y), t.name
    assert x.dtype == y.dtype == jnp.float32, t.name


# ------------------------------------------------- issue 19: BMI additions --

def _mixture_cdf(t, mixture):
  return sum(w * stats.norm.cdf(t - m) for w, m in mixture)


def test_mixture_quantile_matches_scipy_root_finding():
  from scipy import optimize
  z = np.array([-6.0, -3.0, -1.0, -0.2, 0.0, 0.3, 1.5, 3.0, 6.0])
  for mixture in (D.BIMODAL_X, D.BIMODAL_Y):
    got = np.asarray(D.mixture_quantile_of_normal(jnp.asarray(z, jnp.float32), mixture))
    expected = [optimize.brentq(lambda t, p=p: _mixture_cdf(t, mixture) - p, -60, 60,
                                xtol=1e-12)
                for p in stats.norm.cdf(z)]
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert np.all(np.diff(got) > 0)


def test_bimodal_task_margins_and_rank_dependence():
  task = D.get_task('bimodal-1x1-0.75')
  np.testing.assert_allclose(task.mutual_information, -0.5 * np.log(1 - 0.75 ** 2),
                             rtol=1e-12)
  x, y = _sample(task, n=20_000, seed=2)
  assert stats.kstest(x[:, 0], lambda t: _mixture_cdf(t, D.BIMODAL_X)).pvalue > 1e-3
  assert stats.kstest(y[:, 0], lambda t: _mixture_cdf(t, D.BIMODAL_Y)).pvalue > 1e-3
  # Monotone margins keep the copula: Spearman's rho of a bivariate normal is
  # (6 / pi) arcsin(rho / 2).
  rho_s = stats.spearmanr(x[:, 0], y[:, 0])[0]
  np.testing.assert_allclose(rho_s, 6 / np.pi * np.arcsin(0.75 / 2), atol=0.01)


def test_correlated_gaussian_and_high_mi_tasks():
  for mi in (2.0, 5.0, 8.0):
    task = D.get_task(f'gauss-5x5-{mi:g}nats')
    np.testing.assert_allclose(task.mutual_information, mi, rtol=1e-10)
    rho = np.sqrt(1 - np.exp(-2 * mi / 5))     # -(5/2) log(1 - rho^2) = mi
    np.testing.assert_allclose(D.mi_to_rho(mi, 5), rho, rtol=1e-12)
  names = set(D.HIGH_MI_TASKS)
  assert {'half_cube(both):gauss-5x5-8nats', 'asinh(x):gauss-5x5-5nats'} <= names
  x, y = _sample(D.get_task('gauss-5x5-2nats'), n=20_000, seed=3)
  corr = np.corrcoef(x.T, y.T)[:5, 5:]
  np.testing.assert_allclose(np.diag(corr), D.mi_to_rho(2.0, 5), atol=0.01)


def test_gaussian_cmi_matches_partial_correlation():
  # X, Y independent, Z = X + Y + 0.5 e: I(X; Y) = 0 but I(X; Y | Z) > 0.
  cov = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 2.25]])
  prec = np.linalg.inv(cov)
  partial = -prec[0, 1] / np.sqrt(prec[0, 0] * prec[1, 1])
  np.testing.assert_allclose(partial, -0.8, atol=1e-12)
  np.testing.assert_allclose(D.gaussian_cmi(cov, 1, 1),
                             -0.5 * np.log(1 - partial ** 2), rtol=1e-12)
  assert D.gaussian_mi(cov[:2, :2], 1) == 0.0
  # X = Z + e, Y = Z + e': I(X; Y) > 0 but I(X; Y | Z) = 0.
  cov = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
  np.testing.assert_allclose(D.gaussian_cmi(cov, 1, 1), 0.0, atol=1e-12)
  assert D.gaussian_mi(cov[:2, :2], 1) > 0.1
  with pytest.raises(ValueError, match='Z has at least one coordinate'):
    D.gaussian_cmi(cov, 1, 2)
