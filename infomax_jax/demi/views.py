"""Jointly Gaussian views with closed-form (conditional) MI: DEMI's test bed.

``GaussianViews`` gives (x, y) jointly Gaussian with every (conditional) MI from
covariance log-determinants, an exact sampler of p(y | x_S) (the *oracle*
negatives of DEMI) and the optimal critics log p(y | x_S) / p(y | x_G);
``prefix_masks`` / ``row_masks`` build nested subview masks.
"""

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from infomax_jax import distributions

Array = jax.Array


# ------------------------------------------------- closed-form Gaussian MI --

def _logdet(cov: np.ndarray, idx: Sequence[int]) -> float:
  """log det of the sub-covariance on ``idx`` (0 for an empty set)."""
  idx = np.asarray(idx, dtype=int)
  if idx.size == 0:
    return 0.0
  sign, logdet = np.linalg.slogdet(cov[np.ix_(idx, idx)])
  if sign <= 0:
    raise ValueError(f'sub-covariance on indices {idx.tolist()} is not positive '
                     f'definite (sign of det = {sign})')
  return float(logdet)


def gaussian_conditional_mi(cov: np.ndarray, a: Sequence[int], b: Sequence[int],
                            c: Sequence[int] = ()) -> float:
  """I(z_a; z_b | z_c) of z ~ N(mu, cov), in nats, from log-determinants.

      I(A; B | C) = ½ [log|Σ_AC| + log|Σ_BC| - log|Σ_C| - log|Σ_ABC|]

  (with C empty: ½ [log|Σ_A| + log|Σ_B| - log|Σ_AB|]).

  Args:
    cov: (n, n) symmetric positive-definite covariance (numpy, float64).
    a, b, c: disjoint index sets into z; a and b non-empty.

  Returns:
    The conditional MI as a Python float.
  """
  cov = np.asarray(cov, np.float64)
  if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
    raise ValueError(f'cov must be a square (n, n) matrix, got shape {cov.shape}')
  sets = [np.asarray(s, dtype=int).ravel() for s in (a, b, c)]
  if sets[0].size == 0 or sets[1].size == 0:
    raise ValueError(f'a and b must be non-empty, got sizes {sets[0].size} and '
                     f'{sets[1].size}')
  joined = np.concatenate(sets)
  if np.unique(joined).size != joined.size:
    raise ValueError('a, b and c must be disjoint index sets')
  if joined.min() < 0 or joined.max() >= cov.shape[0]:
    raise ValueError(f'indices must lie in [0, {cov.shape[0]}), got '
                     f'{joined.min()}..{joined.max()}')
  sa, sb, sc = sets
  return 0.5 * (_logdet(cov, np.r_[sa, sc]) + _logdet(cov, np.r_[sb, sc])
                - _logdet(cov, sc) - _logdet(cov, np.r_[sa, sb, sc]))


def correlated_gaussian_covariance(dim: int, rho: float) -> np.ndarray:
  """Covariance of (x, y), x ~ N(0, I_d), y = rho x + sqrt(1 - rho²) eps.

  The benchmark of Poole et al. (2019): coordinate i of y depends on
  coordinate i of x only; I(x; y) = -(d/2) log(1 - rho²).

  Args:
    dim: d, the dimension of x and of y.
    rho: correlation in (-1, 1).

  Returns:
    (2d, 2d) covariance, x first.
  """
  if dim < 1:
    raise ValueError(f'dim must be >= 1, got {dim}')
  if not -1.0 < rho < 1.0:
    raise ValueError(f'rho must lie in (-1, 1), got {rho}')
  eye = np.eye(dim)
  return np.block([[eye, rho * eye], [rho * eye, eye]])


def prefix_masks(dim: int, num_subviews: int) -> np.ndarray:
  """Nested masks of contiguous prefixes: subview t holds the first ⌈t d / T⌉ coords.

  Args:
    dim: dimension d of x.
    num_subviews: T >= 1; the last subview is the whole x.

  Returns:
    (T, d) float32 array of 0/1, row t ⊂ row t + 1.
  """
  if not 1 <= num_subviews <= dim:
    raise ValueError(f'num_subviews must lie in [1, dim={dim}], got {num_subviews}')
  ends = [math.ceil((t + 1) * dim / num_subviews) for t in range(num_subviews)]
  return np.stack([(np.arange(dim) < e).astype(np.float32) for e in ends])


def row_masks(subview_rows: Sequence[int], height: int, width: int) -> np.ndarray:
  """Nested masks of a row-major flattened image: rows r..height-1 for each r, then all.

  E.g. the top half of MNIST (height 14, width 28) with ``subview_rows=(7,)``:
  x^(1) = rows 7-13 (the half next to the bottom view), x^(2) = all 14 rows.

  Args:
    subview_rows: strictly decreasing first rows of the subviews x^(1), ...
    height, width: shape of the view before flattening.

  Returns:
    (len(subview_rows) + 1, height * width) float32 0/1 masks.
  """
  rows = list(subview_rows)
  if any(not 0 < r < height for r in rows) or any(a <= b for a, b in zip(rows, rows[1:])):
    raise ValueError(f'subview_rows must be strictly decreasing rows in (0, '
                     f'{height}), got {tuple(rows)}')
  grid = np.repeat(np.arange(height), width)
  return np.stack([(grid >= r).astype(np.float32) for r in rows + [0]])


def check_masks(masks: Any, dim: int) -> np.ndarray:
  """Validates nested 0/1 subview masks of shape (T, dim); returns them as numpy."""
  masks = np.asarray(masks)
  if masks.ndim != 2 or masks.shape[1] != dim:
    raise ValueError(f'masks must have shape (T, {dim}), got {masks.shape}')
  if not np.all((masks == 0) | (masks == 1)):
    raise ValueError('masks must hold only 0s and 1s')
  if np.any(masks[:-1] > masks[1:]) or np.any(masks.sum(1) == 0):
    raise ValueError('masks must be non-empty and nested: every subview must '
                     'contain the previous one')
  return masks.astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianViews:
  """Jointly Gaussian views (x, y) ~ N(0, cov) with everything in closed form.

  Attributes:
    cov: (dx + dy, dx + dy) covariance, x first (numpy float64).
    dx: dimension of x.
  """
  cov: np.ndarray
  dx: int

  def __post_init__(self):
    cov = np.asarray(self.cov, np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] <= self.dx:
      raise ValueError(f'cov must be square (dx + dy, dx + dy) with dy >= 1 for '
                       f'dx = {self.dx}, got shape {cov.shape}')
    if not np.allclose(cov, cov.T):
      raise ValueError('cov must be symmetric')
    object.__setattr__(self, 'cov', cov)
    # Cholesky also checks positive definiteness.
    object.__setattr__(self, '_chol', np.linalg.cholesky(cov))

  @classmethod
  def correlated(cls, dim: int, mi: float) -> 'GaussianViews':
    """The Poole et al. benchmark with d = ``dim`` and I(x; y) = ``mi`` nats."""
    return cls(correlated_gaussian_covariance(dim, distributions.mi_to_rho(mi, dim)), dim)

  @property
  def dy(self) -> int:
    return self.cov.shape[0] - self.dx

  def _x_idx(self, mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (self.dx,):
      raise ValueError(f'subview mask must have shape ({self.dx},), got {mask.shape}')
    return np.flatnonzero(mask)

  def _y_idx(self) -> np.ndarray:
    return np.arange(self.dx, self.dx + self.dy)

  def sample(self, key: Array, num: int) -> tuple[Array, Array]:
    """Draws ``num`` pairs: (x (num, dx), y (num, dy)) float32."""
    eps = jax.random.normal(key, (num, self.cov.shape[0]), jnp.float32)
    z = eps @ jnp.asarray(self._chol.T, jnp.float32)
    return z[:, :self.dx], z[:, self.dx:]

  def batch_sampler(self, num: int) -> Callable[[Any, Array], dict[str, Array]]:
    """A ``train.Task`` sampler: ``(data, key) -> {'x': (num, dx), 'y': (num, dy)}``."""
    return lambda data, key: dict(zip(('x', 'y'), self.sample(key, num)))

  def mutual_information(self, mask=None) -> float:
    """I(x_S; y) for the subview S given by a 0/1 mask (default: all of x)."""
    mask = np.ones(self.dx) if mask is None else mask
    return gaussian_conditional_mi(self.cov, self._x_idx(mask), self._y_idx())

  def conditional_mutual_information(self, mask, given_mask) -> float:
    """I(x_S; y | x_G) for nested subviews G ⊂ S (0/1 masks over x)."""
    s, g = self._x_idx(mask), self._x_idx(given_mask)
    if not set(g) <= set(s):
      raise ValueError('given_mask must be contained in mask')
    return gaussian_conditional_mi(self.cov, np.setdiff1d(s, g), self._y_idx(), g)

  def chain_terms(self, masks) -> np.ndarray:
    """Closed-form chain-rule terms [I(x^(1); y), I(x^(2); y | x^(1)), ...]."""
    masks = check_masks(masks, self.dx)
    terms = [self.mutual_information(masks[0])]
    terms += [self.conditional_mutual_information(masks[t], masks[t - 1])
              for t in range(1, len(masks))]
    return np.asarray(terms)

  def _conditional(self, mask):
    """(A, S): E[y | x_G] = x A^T and Cov[y | x_G] = S, A zero off G, as numpy."""
    g, yi = self._x_idx(mask), self._y_idx()
    a = np.zeros((self.dy, self.dx))
    s = self.cov[np.ix_(yi, yi)]
    if g.size:
      sol = np.linalg.solve(self.cov[np.ix_(g, g)], self.cov[np.ix_(g, yi)])
      a[:, g] = sol.T
      s = s - self.cov[np.ix_(yi, g)] @ sol
    return a, 0.5 * (s + s.T)

  def conditional_sampler(self, given_mask) -> Callable[[Array, Array, int], Array]:
    """The oracle p(y | x_G) as a pure function ``(key, x (B, dx), n) -> (B, n, dy)``.

    A zero mask gives the marginal p(y).
    """
    a, s = self._conditional(given_mask)
    a = jnp.asarray(a, jnp.float32)
    chol = jnp.asarray(np.linalg.cholesky(s), jnp.float32)

    def sample(key: Array, x: Array, num: int) -> Array:
      eps = jax.random.normal(key, (x.shape[0], num, chol.shape[0]), jnp.float32)
      return (x @ a.T)[:, None, :] + eps @ chol.T

    return sample

  def oracle_samplers(self, masks) -> list[Callable[[Array, Array, int], Array]]:
    """The T - 1 oracle negatives' samplers of a chain: p(y | x^(t-1)), t = 2..T."""
    masks = check_masks(masks, self.dx)
    return [self.conditional_sampler(m) for m in masks[:-1]]

  def optimal_critics(self, masks) -> list[Callable[[Array, Array], Array]]:
    """The T optimal critics of a chain: log p(y | x^(t)) / p(y | x^(t-1)).

    The first is the InfoNCE critic log p(y | x^(1)) / p(y).
    """
    masks = check_masks(masks, self.dx)
    return [self.log_density_ratio(masks[t], masks[t - 1] if t else None)
            for t in range(len(masks))]

  def log_density_ratio(self, mask, given_mask=None) -> Callable[[Array, Array], Array]:
    """The optimal critic log p(y | x_S) - log p(y | x_G) as ``(x, y) -> scores``.

    Broadcasts like the pair critics: x (..., dx) and y (..., dy) with
    broadcastable leading axes. ``given_mask=None`` conditions on nothing
    (denominator p(y)): the optimal InfoNCE critic of I(x_S; y).
    """
    given_mask = np.zeros(self.dx) if given_mask is None else given_mask

    def log_density(mask_):
      a, s = self._conditional(mask_)
      prec = jnp.asarray(np.linalg.inv(s), jnp.float32)
      a = jnp.asarray(a, jnp.float32)
      const = -0.5 * (np.linalg.slogdet(s)[1] + self.dy * math.log(2 * math.pi))

      def fn(x, y):
        r = y - x @ a.T
        return const - 0.5 * jnp.einsum('...i,ij,...j->...', r, prec, r)
      return fn

    num, den = log_density(mask), log_density(given_mask)
    return lambda x, y: num(x, y) - den(x, y)

  def optimal_embeddings(self, mask=None) -> Callable[[Array, Array], tuple[Array, Array]]:
    """The optimal InfoNCE critic of I(x_S; y) as a pair of embeddings.

    With E[y | x_S] = A x and Cov[y | x_S] = S,

        log p(y | x_S) - log p(y) = (A x)^T S^-1 y - ½ y^T (S^-1 - Σ_yy^-1) y + c(x),

    so ``ex = [A x, 1]`` and ``ey = [S^-1 y, -½ y^T (S^-1 - Σ_yy^-1) y]`` (width
    dy + 1) have ``ex @ ey.T`` equal to ``log_density_ratio(mask)`` up to c(x),
    a function of x alone that InfoNCE ignores: the optimal critic for
    streaming InfoNCE, which never forms the (K, K) scores.

    Returns:
      ``(x (K, dx), y (K, dy)) -> (ex (K, dy + 1), ey (K, dy + 1))``.
    """
    mask = np.ones(self.dx) if mask is None else mask
    a, s = self._conditional(mask)
    yi = self._y_idx()
    s_inv = np.linalg.inv(s)
    quad = jnp.asarray(s_inv - np.linalg.inv(self.cov[np.ix_(yi, yi)]), jnp.float32)
    a, s_inv = jnp.asarray(a, jnp.float32), jnp.asarray(s_inv, jnp.float32)

    def embed(x: Array, y: Array) -> tuple[Array, Array]:
      ex = jnp.concatenate([x @ a.T, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
      ey = jnp.concatenate([y @ s_inv,
                            -0.5 * jnp.einsum('ki,ij,kj->k', y, quad, y)[:, None]], axis=1)
      return ex, ey

    return embed
