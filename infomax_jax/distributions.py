"""Distributions with closed-form mutual information, for testing MI estimators.

Each ``Task`` pairs a pure-JAX sampler ``sample(key, n) -> (x, y)`` (shapes
(n, d_x) and (n, d_y), float32) with the true I(X; Y) in nats, computed in
closed form (float64, numpy/scipy) from the untransformed distribution:

* **Multivariate normal** (X, Y) ~ N(0, Sigma) with Sigma a correlation matrix
  partitioned into blocks (XX, XY; YX, YY):

      I(X; Y) = 1/2 [log det Sigma_XX + log det Sigma_YY - log det Sigma].

  ``gaussian_sparse``: only the pairs (x_i, y_i), i < n_interacting, are
  correlated (each adds -1/2 log(1 - rho^2)); ``gaussian_dense``: every
  off-diagonal entry of Sigma equals rho (all coordinates interact).

* **Multivariate Student-t** (X, Y) ~ t_nu(0, Sigma) (Z ~ N(0, Sigma),
  U ~ chi^2_nu, (X, Y) = Z / sqrt(U / nu)). Its marginals are t_nu(0, Sigma_XX)
  and t_nu(0, Sigma_YY), and the entropy of a d-dimensional t_nu(0, S) is

      H_d = 1/2 log det S + d/2 log(nu pi) + log G(nu/2) - log G((nu + d)/2)
            + (nu + d)/2 [psi((nu + d)/2) - psi(nu/2)]

  (G = Gamma, psi = digamma). In I = H_{d_x} + H_{d_y} - H_{d_x + d_y} the
  log(nu pi) terms cancel, leaving the Gaussian term of Sigma plus a
  correction that depends only on (nu, d_x, d_y) and is > 0 even when
  Sigma_XY = 0 (the shared U makes X and Y dependent):

      I = I_gauss(Sigma) + log G(nu/2) - log G((nu + d_x)/2)
          - log G((nu + d_y)/2) + log G((nu + d_x + d_y)/2)
          + (nu + d_x)/2 psi((nu + d_x)/2) + (nu + d_y)/2 psi((nu + d_y)/2)
          - (nu + d_x + d_y)/2 psi((nu + d_x + d_y)/2) - nu/2 psi(nu/2).

  (Arellano-Valle, Contreras-Reyes & Genton 2013; Czyz et al. 2023, App. D.)

* **MI-preserving transforms** (``transform``): I(f(X); g(Y)) = I(X; Y) for
  injective (here smooth, invertible) f and g, so each transformed task keeps
  the MI of its base task: the normal CDF (uniform margins for Gaussians), the
  half-cube x |x|^(1/2), asinh, a spiral (each coordinate pair rotated by an
  angle proportional to ||x||^2, which the rotation preserves, so it is
  invertible), and a wiggly monotone map x + sum_k a_k sin(w_k x + p_k) with
  sum_k |a_k w_k| < 1 (its derivative stays >= 0.2 > 0).

* **Bimodal margins** (``bimodal``, the BMI "bimodal 1 x 1" task): each
  coordinate of a bivariate normal mapped by F^{-1} o Phi onto a two-component
  Gaussian mixture (``mixture_quantile_of_normal``, strictly increasing).

``suite()`` is the benchmark used by ``experiments/estimators.py``: 21 tasks,
1-D to 25-D, MI from 0.41 to 3.06 nats; ``HIGH_MI_TASKS`` adds 5 + 5-D
correlated Gaussians at 2, 5 and 8 nats and invertible transforms of them.
Tasks are available by name through ``get_task`` (``TASKS`` and
``HIGH_MI_TASKS``).

References: Czyz, Grabowski, Vogt, Beerenwinkel & Marx 2023, "Beyond Normal:
On the Evaluation of Mutual Information Estimators" (the BMI benchmark).
"""

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from infomax_jax import registry

Array = jax.Array
Sampler = Callable[[Array, int], tuple[Array, Array]]


@dataclasses.dataclass(frozen=True)
class Task:
  """A joint distribution of (X, Y) with known mutual information.

  Attributes:
    name: short identifier, e.g. ``'normal-5x5-sparse'``.
    dim_x: dimension of X.
    dim_y: dimension of Y.
    mutual_information: the true I(X; Y) in nats.
    sampler: pure JAX function ``(key, n) -> (x, y)``, x: (n, dim_x),
      y: (n, dim_y), float32; jit-able with ``n`` static.
  """
  name: str
  dim_x: int
  dim_y: int
  mutual_information: float
  sampler: Sampler = dataclasses.field(repr=False, compare=False)

  def sample(self, key: Array, n: int) -> tuple[Array, Array]:
    """Draws n i.i.d. pairs: (x, y) of shapes (n, dim_x), (n, dim_y)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
      raise ValueError(f'{self.name}: n must be a positive int, got {n!r}')
    return _jit_sampler(self.sampler)(key, int(n))


_JITTED: dict[int, Callable] = {}


def _jit_sampler(sampler: Sampler) -> Callable:
  # One compiled sampler per function (n static); avoids retracing on each call.
  key = id(sampler)
  if key not in _JITTED:
    _JITTED[key] = (sampler, jax.jit(sampler, static_argnums=1))
  return _JITTED[key][1]


# ------------------------------------------------------------ closed forms --

def _logdet(matrix: np.ndarray) -> float:
  sign, logdet = np.linalg.slogdet(matrix)
  if sign <= 0:
    raise ValueError('covariance must be positive definite, got a matrix with '
                     f'determinant sign {sign}')
  return float(logdet)


def _check_covariance(cov, dim_x: int, what: str) -> np.ndarray:
  cov = np.asarray(cov, dtype=np.float64)
  if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
    raise ValueError(f'{what} must be a square (d_x + d_y, d_x + d_y) matrix, '
                     f'got shape {cov.shape}')
  d = cov.shape[0]
  if not isinstance(dim_x, (int, np.integer)) or not 1 <= dim_x < d:
    raise ValueError(f'dim_x must be an int in [1, {d - 1}] for a {d}x{d} '
                     f'{what}, got {dim_x!r}')
  if not np.allclose(cov, cov.T, atol=1e-12):
    raise ValueError(f'{what} must be symmetric')
  eig = np.linalg.eigvalsh(cov)
  if eig[0] <= 1e-10 * max(eig[-1], 1e-300):
    raise ValueError(f'{what} must be positive definite, got smallest '
                     f'eigenvalue {eig[0]:.3g}')
  return cov


def gaussian_mi(cov, dim_x: int) -> float:
  """I(X; Y) = 1/2 [log det S_XX + log det S_YY - log det S] for (X, Y) ~ N(m, S).

  Args:
    cov: (d_x + d_y, d_x + d_y) positive-definite covariance (or dispersion) S.
    dim_x: d_x; X is the first d_x coordinates.

  Returns:
    The mutual information in nats.
  """
  cov = _check_covariance(cov, dim_x, 'cov')
  return 0.5 * (_logdet(cov[:dim_x, :dim_x]) + _logdet(cov[dim_x:, dim_x:])
                - _logdet(cov))


def gaussian_cmi(cov, dim_x: int, dim_y: int) -> float:
  """I(X; Y | Z) for (X, Y, Z) ~ N(m, S), X, Y, Z the consecutive blocks of S.

  By the chain rule I(X; Y | Z) = I(X; (Y, Z)) - I(X; Z), each term from
  ``gaussian_mi``.

  Args:
    cov: (d_x + d_y + d_z, ...) positive-definite covariance, d_z >= 1.
    dim_x: d_x.
    dim_y: d_y.

  Returns:
    The conditional mutual information in nats.
  """
  cov = np.asarray(cov, dtype=np.float64)
  d = cov.shape[0] if cov.ndim == 2 else 0
  if not (isinstance(dim_y, (int, np.integer)) and dim_y >= 1
          and dim_x + dim_y < d):
    raise ValueError(f'need d_x + d_y < d (Z has at least one coordinate), '
                     f'got d_x={dim_x}, d_y={dim_y}, cov of shape {cov.shape}')
  xz = np.r_[0:dim_x, dim_x + dim_y:d]
  return gaussian_mi(cov, dim_x) - gaussian_mi(cov[np.ix_(xz, xz)], dim_x)


def student_t_correction(dof: float, dim_x: int, dim_y: int) -> float:
  """The part of the Student-t MI that does not depend on the dispersion.

  I(X; Y) = gaussian_mi(Sigma) + student_t_correction(nu, d_x, d_y) for
  (X, Y) ~ t_nu(0, Sigma); see the module docstring for the derivation.

  Args:
    dof: degrees of freedom nu > 0.
    dim_x: d_x >= 1.
    dim_y: d_y >= 1.

  Returns:
    The correction in nats (positive; -> 0 as nu -> infinity).
  """
  if not dof > 0 or not math.isfinite(dof):
    raise ValueError(f'dof must be a finite number > 0, got {dof!r}')
  nu, dx, dy = float(dof), float(dim_x), float(dim_y)
  h = lambda d: 0.5 * (nu + d)  # pylint: disable=unnecessary-lambda-assignment
  value = float(
      special.gammaln(nu / 2) - special.gammaln(h(dx)) - special.gammaln(h(dy))
      + special.gammaln(h(dx + dy))
      + h(dx) * special.digamma(h(dx)) + h(dy) * special.digamma(h(dy))
      - h(dx + dy) * special.digamma(h(dx + dy))
      - nu / 2 * special.digamma(nu / 2))
  # The terms cancel to ~(d_x d_y) / (2 nu^2) for large nu; rounding can then
  # leave a value of order -1e-9, while the true correction is > 0.
  return max(value, 0.0)


def student_t_mi(dispersion, dim_x: int, dof: float) -> float:
  """Closed-form I(X; Y) for (X, Y) ~ t_nu(0, dispersion), in nats."""
  dispersion = _check_covariance(dispersion, dim_x, 'dispersion')
  dim_y = dispersion.shape[0] - dim_x
  return gaussian_mi(dispersion, dim_x) + student_t_correction(dof, dim_x, dim_y)


# ---------------------------------------------------------------- samplers --

def _split_xy(z: Array, dim_x: int) -> tuple[Array, Array]:
  return z[:, :dim_x], z[:, dim_x:]


def multivariate_normal(cov, dim_x: int, name: str | None = None) -> Task:
  """(X, Y) ~ N(0, cov), X the first dim_x coordinates.

  Args:
    cov: (d, d) positive-definite covariance, d = d_x + d_y.
    dim_x: d_x, in [1, d - 1].
    name: task name (default ``'normal-{d_x}x{d_y}'``).

  Returns:
    The ``Task``; its MI is ``gaussian_mi(cov, dim_x)``.
  """
  cov = _check_covariance(cov, dim_x, 'cov')
  d = cov.shape[0]
  chol = jnp.asarray(np.linalg.cholesky(cov), jnp.float32)

  def sampler(key: Array, n: int) -> tuple[Array, Array]:
    z = jax.random.normal(key, (n, d), jnp.float32) @ chol.T
    return _split_xy(z, dim_x)

  return Task(name or f'normal-{dim_x}x{d - dim_x}', dim_x, d - dim_x,
              gaussian_mi(cov, dim_x), sampler)


def sparse_correlation(dim_x: int, dim_y: int, n_interacting: int,
                       correlation: float) -> np.ndarray:
  """Correlation matrix with Corr(x_i, y_i) = rho for i < n_interacting only."""
  for nm, v in (('dim_x', dim_x), ('dim_y', dim_y)):
    if not isinstance(v, (int, np.integer)) or v < 1:
      raise ValueError(f'{nm} must be a positive int, got {v!r}')
  if not 0 <= n_interacting <= min(dim_x, dim_y):
    raise ValueError(f'n_interacting must lie in [0, min(dim_x, dim_y)] = '
                     f'[0, {min(dim_x, dim_y)}], got {n_interacting}')
  if not -1 < correlation < 1:
    raise ValueError(f'correlation must lie in (-1, 1), got {correlation}')
  cov = np.eye(dim_x + dim_y)
  for i in range(n_interacting):
    cov[i, dim_x + i] = cov[dim_x + i, i] = correlation
  return cov


def dense_correlation(dim_x: int, dim_y: int, correlation: float) -> np.ndarray:
  """Equicorrelation matrix: every off-diagonal entry equals ``correlation``."""
  d = dim_x + dim_y
  if not -1.0 / (d - 1) < correlation < 1:
    raise ValueError(f'an equicorrelation matrix of size {d} is positive '
                     f'definite for correlation in ({-1.0 / (d - 1):.4g}, 1), '
                     f'got {correlation}')
  return (1 - correlation) * np.eye(d) + correlation * np.ones((d, d))


def gaussian_sparse(dim_x: int, dim_y: int, n_interacting: int,
                    correlation: float) -> Task:
  """Gaussian with sparse interactions: only (x_i, y_i), i < n_interacting, correlate.

  I(X; Y) = -(n_interacting / 2) log(1 - correlation^2).
  """
  cov = sparse_correlation(dim_x, dim_y, n_interacting, correlation)
  return multivariate_normal(
      cov, dim_x, f'normal-{dim_x}x{dim_y}-sparse{n_interacting}-{correlation:g}')


def gaussian_dense(dim_x: int, dim_y: int, correlation: float) -> Task:
  """Gaussian with dense interactions: all off-diagonal correlations equal rho.

  With L(d) = (d - 1) log(1 - rho) + log(1 + (d - 1) rho) the log-determinant
  of a d x d equicorrelation matrix, I = [L(d_x) + L(d_y) - L(d_x + d_y)] / 2.
  """
  cov = dense_correlation(dim_x, dim_y, correlation)
  return multivariate_normal(cov, dim_x,
                             f'normal-{dim_x}x{dim_y}-dense-{correlation:g}')


def student_t(dispersion, dim_x: int, dof: float,
              name: str | None = None) -> Task:
  """(X, Y) ~ multivariate Student-t with ``dof`` degrees of freedom.

  Sampled as Z / sqrt(U / nu), Z ~ N(0, dispersion), U ~ chi^2_nu = 2 Gamma(nu/2).

  Args:
    dispersion: (d, d) positive-definite scale matrix Sigma.
    dim_x: d_x, in [1, d - 1].
    dof: degrees of freedom nu > 0.
    name: task name (default ``'student-{d_x}x{d_y}-dof{nu}'``).

  Returns:
    The ``Task``; its MI is ``student_t_mi(dispersion, dim_x, dof)``.
  """
  dispersion = _check_covariance(dispersion, dim_x, 'dispersion')
  mi = student_t_mi(dispersion, dim_x, dof)
  d = dispersion.shape[0]
  chol = jnp.asarray(np.linalg.cholesky(dispersion), jnp.float32)
  half_nu = float(dof) / 2

  def sampler(key: Array, n: int) -> tuple[Array, Array]:
    kz, ku = jax.random.split(key)
    z = jax.random.normal(kz, (n, d), jnp.float32) @ chol.T
    u = 2.0 * jax.random.gamma(ku, half_nu, (n, 1), jnp.float32)
    return _split_xy(z * jax.lax.rsqrt(u / (2 * half_nu)), dim_x)

  return Task(name or f'student-{dim_x}x{d - dim_x}-dof{dof:g}', dim_x,
              d - dim_x, mi, sampler)


def student_t_sparse(dim_x: int, dim_y: int, dof: float, n_interacting: int,
                     correlation: float) -> Task:
  """Student-t whose dispersion is ``sparse_correlation(...)``."""
  cov = sparse_correlation(dim_x, dim_y, n_interacting, correlation)
  return student_t(
      cov, dim_x, dof,
      f'student-{dim_x}x{dim_y}-dof{dof:g}-sparse{n_interacting}-{correlation:g}')


# -------------------------------------------------------------- transforms --

def normal_cdf(x: Array) -> Array:
  """Phi(x), elementwise: uniform margins for standard normal coordinates.

  In float32 it rounds to exactly 1 above x ~ 5.3 (and loses relative
  precision near 1 earlier), so far upper tails are not injective numerically;
  apply it to light-tailed coordinates.
  """
  return jax.scipy.special.ndtr(x)


def half_cube(x: Array) -> Array:
  """x |x|^(1/2), elementwise (strictly increasing)."""
  return x * jnp.sqrt(jnp.abs(x))


def asinh(x: Array) -> Array:
  """asinh(x) = log(x + sqrt(x^2 + 1)), elementwise (compresses heavy tails)."""
  return jnp.arcsinh(x)


_WIGGLY = ((0.4, 1.0, 0.0), (0.2, 2.0, 1.0))  # (a_k, w_k, p_k); sum |a w| = 0.8


def wiggly(x: Array) -> Array:
  """x + 0.4 sin(x) + 0.2 sin(2x + 1): derivative in [0.2, 1.8], so monotone."""
  return x + sum(a * jnp.sin(w * x + p) for a, w, p in _WIGGLY)


def spiral(x: Array, speed: float = 0.5) -> Array:
  """Rotates each coordinate pair (x_0, x_1), (x_2, x_3), ... by speed ||x||^2.

  Rotations preserve ||x||, so the inverse rotates back by the same angle: the
  map is a diffeomorphism of R^d (d >= 2; an odd last coordinate is kept).

  Args:
    x: (n, d) points, d >= 2.
    speed: radians per unit of squared norm.

  Returns:
    (n, d) rotated points.
  """
  if x.ndim != 2 or x.shape[1] < 2:
    raise ValueError(f'spiral needs (n, d) points with d >= 2, got shape {x.shape}')
  d = x.shape[1]
  m = d // 2
  theta = speed * jnp.sum(x * x, axis=1, keepdims=True)           # (n, 1)
  c, s = jnp.cos(theta), jnp.sin(theta)
  a, b = x[:, 0:2 * m:2], x[:, 1:2 * m:2]
  pairs = jnp.stack([c * a - s * b, s * a + c * b], axis=-1).reshape(x.shape[0], 2 * m)
  return jnp.concatenate([pairs, x[:, 2 * m:]], axis=1)


TRANSFORMS: dict[str, Callable[[Array], Array]] = {
    'normal_cdf': normal_cdf,
    'half_cube': half_cube,
    'asinh': asinh,
    'spiral': spiral,
    'wiggly': wiggly,
}


def transform(task: Task, name: str, apply_to: str = 'both') -> Task:
  """``task`` with an invertible map applied to X, Y or both; the MI is unchanged.

  Args:
    task: the base task.
    name: one of ``TRANSFORMS`` (normal_cdf, half_cube, asinh, spiral, wiggly).
    apply_to: 'x', 'y' or 'both'.

  Returns:
    A ``Task`` named ``'{name}({apply_to}):{task.name}'`` with the same MI.
  """
  fn = registry.lookup(TRANSFORMS, name, 'transform')
  if apply_to not in ('x', 'y', 'both'):
    raise ValueError(f"apply_to must be 'x', 'y' or 'both', got {apply_to!r}")
  if name == 'spiral':
    dims = {'x': (task.dim_x,), 'y': (task.dim_y,),
            'both': (task.dim_x, task.dim_y)}[apply_to]
    if min(dims) < 2:
      raise ValueError(f'spiral needs dimension >= 2, but {task.name} has '
                       f'dim_x={task.dim_x}, dim_y={task.dim_y} '
                       f'(apply_to={apply_to!r})')
  fx = fn if apply_to in ('x', 'both') else (lambda v: v)
  fy = fn if apply_to in ('y', 'both') else (lambda v: v)
  base = task.sampler

  def sampler(key: Array, n: int) -> tuple[Array, Array]:
    x, y = base(key, n)
    return fx(x), fy(y)

  return Task(f'{name}({apply_to}):{task.name}', task.dim_x, task.dim_y,
              task.mutual_information, sampler)


# ------------------------------------------ isotropic correlated Gaussians --

def mi_to_rho(mi: float, dim: int) -> float:
  """The rho at which x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps share ``mi`` nats.

  I(X; Y) = -(d/2) log(1 - rho^2), so rho = sqrt(1 - e^{-2 I / d}) (Poole et
  al. 2019, Sec. 4: the Gaussian staircase benchmark).
  """
  if not mi >= 0 or not (isinstance(dim, (int, np.integer)) and dim >= 1):
    raise ValueError(f'mi_to_rho: need mi >= 0 and an int dim >= 1, got mi={mi!r}, '
                     f'dim={dim!r}')
  return math.sqrt(-math.expm1(-2.0 * mi / dim))


def sample_correlated_gaussian(key: Array, rho: Array | float, n: int,
                               dim: int) -> tuple[Array, Array]:
  """x ~ N(0, I_dim), y = rho x + sqrt(1 - rho^2) eps: (n, dim) each.

  ``rho`` may be traced (e.g. the level of a staircase picked by the step).
  """
  x, eps = jax.random.normal(key, (2, n, dim))
  return x, rho * x + jnp.sqrt(1.0 - rho**2) * eps


# ------------------------------------------------------- bimodal margins --

# (weights, means) of the unit-variance Gaussian mixtures of the BMI benchmark's
# "bimodal 1 x 1" task (Czyz et al. 2023): X's margin 0.3 N(0, 1) + 0.7 N(5, 1),
# Y's margin 0.5 N(-1, 1) + 0.5 N(3, 1).
BIMODAL_X = ((0.3, 0.0), (0.7, 5.0))
BIMODAL_Y = ((0.5, -1.0), (0.5, 3.0))


def mixture_quantile_of_normal(z: Array, mixture) -> Array:
  """F^{-1}(Phi(z)), F the CDF of sum_k w_k N(m_k, 1): a standard normal z -> the mixture.

  Strictly increasing in z (a composition of CDF and inverse CDF), so it keeps
  the MI. Solved by 64 bisection steps on log F(t) = log Phi(z) for z < 0 and
  on log(1 - F(t)) = log Phi(-z) for z >= 0 (log-CDFs: no rounding of the
  tails to 0 or 1 in float32 for |z| up to ~37).

  Args:
    z: standard normal values, any shape.
    mixture: ((w_1, m_1), (w_2, m_2), ...) with weights summing to 1.

  Returns:
    Values of the mixture, the shape of z.
  """
  w = np.array([c[0] for c in mixture], np.float64)
  m = np.array([c[1] for c in mixture], np.float64)
  if np.any(w <= 0) or abs(w.sum() - 1) > 1e-9:
    raise ValueError(f'mixture weights must be > 0 and sum to 1, got {tuple(w)}')
  logw = jnp.asarray(np.log(w), z.dtype)
  means = jnp.asarray(m, z.dtype)
  lower = z < 0
  target = jax.scipy.special.log_ndtr(jnp.where(lower, z, -z))

  def log_tail(t):   # log F(t) where lower, else log(1 - F(t))
    u = jnp.where(lower[..., None], t[..., None] - means, means - t[..., None])
    return jax.nn.logsumexp(logw + jax.scipy.special.log_ndtr(u), axis=-1)

  lo = jnp.full_like(z, float(m.min()) - 40.0)
  hi = jnp.full_like(z, float(m.max()) + 40.0)

  def step(_, bounds):
    a, b = bounds
    mid = 0.5 * (a + b)
    # log F increases in t; log(1 - F) decreases.
    above = jnp.where(lower, log_tail(mid) > target, log_tail(mid) < target)
    return jnp.where(above, a, mid), jnp.where(above, mid, b)

  a, b = jax.lax.fori_loop(0, 64, step, (lo, hi))
  return 0.5 * (a + b)


def bimodal(correlation: float = 0.75) -> Task:
  """The BMI "bimodal 1 x 1" task: a bivariate normal with bimodal margins.

  (X', Y') ~ N(0, [[1, rho], [rho, 1]]); X = F_X^{-1}(Phi(X')), Y =
  F_Y^{-1}(Phi(Y')) with the mixtures ``BIMODAL_X`` and ``BIMODAL_Y``. Both
  maps are strictly increasing, so I(X; Y) = -1/2 log(1 - rho^2).
  """
  base = gaussian_sparse(1, 1, 1, correlation)

  def sampler(key: Array, n: int) -> tuple[Array, Array]:
    x, y = base.sampler(key, n)
    return (mixture_quantile_of_normal(x, BIMODAL_X),
            mixture_quantile_of_normal(y, BIMODAL_Y))

  return Task(f'bimodal-1x1-{correlation:g}', 1, 1, base.mutual_information,
              sampler)


# ------------------------------------------------------- high-MI Gaussians --

def correlated_gaussian(mi: float, dim: int) -> Task:
  """x ~ N(0, I_dim), y = rho x + sqrt(1 - rho^2) eps with I(X; Y) = ``mi`` nats.

  rho = ``mi_to_rho(mi, dim)`` on every coordinate pair (Poole et al. 2019).
  """
  rho = mi_to_rho(mi, dim)
  task = gaussian_sparse(dim, dim, dim, rho)
  return dataclasses.replace(task, name=f'gauss-{dim}x{dim}-{mi:g}nats')


# ------------------------------------------------------------------- suite --

# name -> factory. The suite spans 1-D to 25-D and ~0.4 to ~3 nats.
TASKS: dict[str, Callable[[], Task]] = {
    'normal-1x1-0.75': lambda: gaussian_sparse(1, 1, 1, 0.75),      # 0.413
    'normal-1x1-0.9': lambda: gaussian_sparse(1, 1, 1, 0.9),        # 0.830
    'normal-3x3-dense': lambda: gaussian_dense(3, 3, 0.5),          # 0.413
    'normal-5x5-sparse': lambda: gaussian_sparse(5, 5, 2, 0.8),     # 1.022
    'normal-5x5-all': lambda: gaussian_sparse(5, 5, 5, 0.84),       # 3.057
    'normal-25x25-sparse': lambda: gaussian_sparse(25, 25, 5, 0.75),  # 2.067
    'normal-25x25-dense': lambda: gaussian_dense(25, 25, 0.5),      # 1.292
    'student-1x1-dof1': lambda: student_t_sparse(1, 1, 1.0, 1, 0.6),  # 0.447
    'student-2x2-dof3': lambda: student_t_sparse(2, 2, 3.0, 2, 0.6),  # 0.557
    'student-5x5-dof5': lambda: student_t_sparse(5, 5, 5.0, 3, 0.7),  # 1.176
    'half_cube(x):normal-1x1-0.75':
        lambda: transform(TASKS['normal-1x1-0.75'](), 'half_cube', 'x'),
    'asinh(both):student-1x1-dof1':
        lambda: transform(TASKS['student-1x1-dof1'](), 'asinh', 'both'),
    'normal_cdf(both):normal-3x3-dense':
        lambda: transform(TASKS['normal-3x3-dense'](), 'normal_cdf', 'both'),
    'spiral(x):normal-5x5-sparse':
        lambda: transform(TASKS['normal-5x5-sparse'](), 'spiral', 'x'),
    'wiggly(y):normal-1x1-0.9':
        lambda: transform(TASKS['normal-1x1-0.9'](), 'wiggly', 'y'),
    # BMI benchmark tasks (Czyz et al. 2023) missing above: bimodal margins,
    # Student-t with identity dispersion (all of the MI from the shared
    # chi^2 scale), and transforms of 25-D and Student-t tasks.
    'bimodal-1x1-0.75': lambda: bimodal(0.75),                      # 0.413
    'student-identity-2x2-dof1':
        lambda: student_t_sparse(2, 2, 1.0, 0, 0.0),                # 0.432
    'student-identity-3x3-dof2':
        lambda: student_t_sparse(3, 3, 2.0, 0, 0.0),                # 0.291
    'asinh(both):student-identity-3x3-dof2':
        lambda: transform(TASKS['student-identity-3x3-dof2'](), 'asinh', 'both'),
    'half_cube(both):normal-25x25-sparse':
        lambda: transform(TASKS['normal-25x25-sparse'](), 'half_cube', 'both'),
    'spiral(x):normal-3x3-dense':
        lambda: transform(TASKS['normal-3x3-dense'](), 'spiral', 'x'),
}

# High-MI tasks (issue 19): 5 + 5 dimensions at 2, 5 and 8 nats, and
# invertible (per-coordinate and spiral) transforms of them.
HIGH_MI_TASKS: dict[str, Callable[[], Task]] = {}
for _mi in (2.0, 5.0, 8.0):
  _name = f'gauss-5x5-{_mi:g}nats'
  HIGH_MI_TASKS[_name] = functools.partial(correlated_gaussian, _mi, 5)
  HIGH_MI_TASKS[f'half_cube(both):{_name}'] = functools.partial(
      lambda m: transform(correlated_gaussian(m, 5), 'half_cube', 'both'), _mi)
  HIGH_MI_TASKS[f'asinh(x):{_name}'] = functools.partial(
      lambda m: transform(correlated_gaussian(m, 5), 'asinh', 'x'), _mi)
del _mi, _name


def get_task(name: str) -> Task:
  """The task named ``name`` (``TASKS`` or ``HIGH_MI_TASKS``); unknown names list the valid ones."""
  task = registry.lookup({**TASKS, **HIGH_MI_TASKS}, name, 'task')()
  return dataclasses.replace(task, name=name)


def suite(names=None) -> list[Task]:
  """The benchmark tasks (all of ``TASKS`` by default), in ``TASKS`` order."""
  return [get_task(n) for n in (list(TASKS) if names is None else names)]
