"""DEMI: decomposed estimation of mutual information (Sordoni et al. 2021).

Split a view x into progressively more informed subviews
x^(1) ⊂ x^(2) ⊂ ... ⊂ x^(T) = x and sum, by the chain rule,

    I(x; y) = I(x^(1); y) + sum_{t=2}^T I(x^(t); y | x^(t-1)).

The first term is an ordinary InfoNCE on in-batch pairs; every other term is a
conditional InfoNCE (``bounds.conditional_infonce``) whose positive is the
paired y ~ p(y | x^(t)) and whose negatives come from p(y | x^(t-1)). Each term
is capped at log K by itself, so the sum can exceed the log K ceiling of a
single InfoNCE on (x, y).

This module supplies what the bounds need and is not a bound itself:

* ``GaussianViews``: jointly Gaussian (x, y) with closed-form (conditional)
  MIs from covariance log-determinants, an exact sampler of p(y | x_S) (the
  *oracle* negatives) and the optimal critics log p(y | x_S) / p(y | x_G);
* ``importance_resample``: the *approximate* negatives, in-batch y_j resampled
  for each example i with self-normalised weights ∝ exp ψ(x_i^(t-1), y_j), ψ the
  unconditional critic (p(y | x') = p(y) e^{ψ*(x', y)} / Z(x'));
* broadcasting pair critics ``critic(x[..., dx], y[..., dy]) -> (...)`` that
  score both the K x K in-batch matrix (``x[:, None], y[None]``) and per-example
  negative sets (``x[:, None], y_sets``) of shape (B, N, dy);
* ``estimate_terms``: the per-term estimates of a chain of critics on a batch,
  with oracle, resampled or importance-reweighted negatives;
* ``chain_objective`` and ``batch_mean``: the metrics, the training loss and
  the fixed-batch evaluation of a chain of critics trained by a method of
  ``METHODS`` (InfoNCE or DEMI with one kind of negatives).

Subviews are given as nested 0/1 masks over the coordinates of x (the critic of
term t sees ``x * masks[t]``); ``prefix_masks`` builds contiguous ones,
``row_masks`` bands of image rows.

Reference: A. Sordoni, N. Dziri, H. Schulz, G. Gordon, P. Bachman, R. Tachet des
Combes, "Decomposed Mutual Information Estimation for Contrastive
Representation Learning", ICML 2021.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from infomax_jax import bounds, critics, distributions, registry

Array = jax.Array

NEGATIVES = ('oracle', 'resample', 'reweight')


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


# ---------------------------------------------------- importance resampling --

def _masked_log_weights(log_weights: Array, exclude_self: bool, fn: str) -> Array:
  # pylint: disable-next=protected-access
  log_weights = bounds.as_float(log_weights, f'{fn}: log_weights')
  if log_weights.ndim != 2 or log_weights.shape[1] < 1:
    raise ValueError(f'{fn}: log_weights must have shape (B, C) (examples x '
                     f'candidates), got {log_weights.shape}')
  if exclude_self:
    b, c = log_weights.shape
    if b != c:
      raise ValueError(f'{fn}: exclude_self needs square in-batch log_weights '
                       f'(B, B), got {log_weights.shape}')
    if b < 2:
      raise ValueError(f'{fn}: exclude_self needs B >= 2, got B = {b}')
    log_weights = jnp.where(jnp.eye(b, dtype=bool), -jnp.inf, log_weights)
  return log_weights


def importance_resample(key: Array, log_weights: Array, num_samples: int, *,
                        exclude_self: bool = True) -> Array:
  """Sampling-importance-resampling of candidates, independently per example.

  For example i, draws ``num_samples`` indices j with replacement from

      P(j | i) = exp(w_ij) / sum_l exp(w_il),

  i.e. from the self-normalised importance distribution that turns candidates
  y_j ~ p(y) into approximate samples of p(y | x_i') when
  w_ij = ψ(x_i', y_j) ≈ log p(y_j | x_i') / p(y_j) + c(x_i'). Pure and jit-able:
  inverse-CDF sampling, a ``searchsorted`` of uniforms in each row's
  cumulative weights under ``vmap``, O(B (C + S log C)) time and memory for S
  samples (``jax.random.categorical`` would materialise B x S x C Gumbels); no
  gradient flows through the (discrete) draw.

  Args:
    key: PRNG key.
    log_weights: (B, C) unnormalised log-weights of C candidates per example.
    num_samples: number of indices per example.
    exclude_self: drop candidate j = i (needs C = B): in-batch y_i is drawn
      from p(y | x_i), not from p(y), so it is not a valid candidate for row i.

  Returns:
    (B, num_samples) int32 candidate indices.
  """
  if num_samples < 1:
    raise ValueError(f'importance_resample: num_samples must be >= 1, got '
                     f'{num_samples}')
  lw = jax.lax.stop_gradient(
      _masked_log_weights(log_weights, exclude_self, 'importance_resample'))
  cdf = jnp.cumsum(jax.nn.softmax(lw, axis=1), axis=1)           # (B, C)
  u = jax.random.uniform(key, (lw.shape[0], num_samples), cdf.dtype) * cdf[:, -1:]
  # First j with cdf[j] > u: candidates of zero weight (flat cdf) are never hit.
  idx = jax.vmap(lambda c, v: jnp.searchsorted(c, v, side='right'))(cdf, u)
  return jnp.minimum(idx, lw.shape[1] - 1).astype(jnp.int32)


def effective_sample_size(log_weights: Array, *, exclude_self: bool = True) -> Array:
  """Kish's ESS (sum w)² / sum w² of the self-normalised weights, per example.

  Ranges from 1 (one candidate takes all the weight: resampling repeats it)
  to C (uniform weights). A diagnostic of the approximate negatives.

  Args:
    log_weights: (B, C) unnormalised log-weights.
    exclude_self: as in ``importance_resample``.

  Returns:
    (B,) effective sample sizes.
  """
  lw = _masked_log_weights(log_weights, exclude_self, 'effective_sample_size')
  return jnp.exp(2 * jax.nn.logsumexp(lw, axis=1)
                 - jax.nn.logsumexp(2 * lw, axis=1))


# ------------------------------------------------------------ pair critics --

class SeparablePairCritic(nn.Module):
  """f(x, y) = phi_x(x) . phi_y(y), broadcasting over leading axes.

  ``f(x[:, None], y[None])`` is the (K, K) in-batch matrix; ``f(x[:, None],
  y_sets)`` with y_sets (B, N, dy) scores per-example negative sets (B, N).
  The towers run once per distinct x and y row.

  Attributes:
    hidden: hidden widths of each tower (ReLU).
    embed_dim: output width of each tower.
  """
  hidden: Sequence[int] = (256, 256)
  embed_dim: int = 32

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    features = (*self.hidden, self.embed_dim)
    gx = critics.MLP(features, name='phi_x')(x)
    gy = critics.MLP(features, name='phi_y')(y)
    return jnp.sum(gx * gy, axis=-1)


class ConcatPairCritic(nn.Module):
  """f(x, y) = phi([x, y]), broadcasting over leading axes.

  The first layer W [x; y] + b = W_x x + W_y y + b is applied to x and y
  separately and broadcast, then the MLP tail runs on every pair.

  Attributes:
    hidden: hidden widths (ReLU), at least one; the output is one score.
  """
  hidden: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    if not self.hidden:
      raise ValueError('ConcatPairCritic: hidden must name at least one width')
    h = (nn.Dense(self.hidden[0], use_bias=False, name='dense_x')(x)
         + nn.Dense(self.hidden[0], name='dense_y')(y))
    h = critics.MLP((*self.hidden[1:], 1), name='tail')(nn.relu(h))
    return h[..., 0]


PAIR_CRITICS = {'separable': SeparablePairCritic, 'concat': ConcatPairCritic}


def make_pair_critic(name: str, **kwargs) -> nn.Module:
  """The broadcasting pair critic named ``name`` ('separable' or 'concat')."""
  return registry.lookup(PAIR_CRITICS, name, 'pair critic')(**kwargs)


def pairwise_scores(critic_fn: Callable[[Array, Array], Array], x: Array,
                    y: Array) -> Array:
  """scores[i, j] = f(x_i, y_j) of a broadcasting critic: (K, dx), (K, dy) -> (K, K)."""
  return critic_fn(x[:, None, :], y[None, :, :])


def set_scores(critic_fn: Callable[[Array, Array], Array], x: Array,
               y_sets: Array) -> Array:
  """scores[i, n] = f(x_i, y_sets[i, n]): (B, dx), (B, N, dy) -> (B, N)."""
  if y_sets.ndim != 3 or y_sets.shape[0] != x.shape[0]:
    raise ValueError(f'y_sets must have shape (B, N, dy) with B = {x.shape[0]}, '
                     f'got {y_sets.shape}')
  return critic_fn(x[:, None, :], y_sets)


# -------------------------------------------------------------- DEMI terms --

def estimate_terms(critic_fns: Sequence[Callable[[Array, Array], Array]], x: Array,
               y: Array, masks, key: Array, *, negatives: str = 'resample',
               oracle_samplers: Optional[Sequence[Callable[..., Array]]] = None,
               num_negatives: Optional[int] = None) -> tuple[Array, dict[str, Array]]:
  """Per-term DEMI estimates of a chain of critics on one batch.

  Term 1 is ``bounds.infonce`` of f_1(x * m_1, y) on the (K, K) in-batch
  matrix. Term t >= 2 is ``bounds.conditional_infonce`` of f_t(x * m_t, .) with
  the positive y_i and negatives from p(y | x_i * m_{t-1}) drawn by:

  * 'oracle': ``oracle_samplers[t-2](key, x, N)`` (exact p(y | x^(t-1)));
  * 'resample': ``importance_resample`` of the in-batch y_j (j != i) with
    log-weights ψ_{t-1}(x_i, y_j) = sum_{s<t} f_s(x_i * m_s, y_j): by the chain
    rule the sum of the optimal critics of the earlier terms is
    log p(y | x^(t-1)) / p(y) up to a function of x, which self-normalisation
    removes; for t = 2 it is the InfoNCE critic ψ of the paper;
  * 'reweight': every in-batch y_j (j != i) as a negative, weighted by the
    same self-normalised importance weights (no resampling noise).

  Weights use ``stop_gradient``: each critic is trained by its own term only.

  'resample' and 'reweight' approximate the bound and are not bounds
  themselves: self-normalised importance sampling from K - 1 candidates of
  p(y) under-represents p(y | x^(t-1)) when I(x^(t-1); y) is large (the
  effective sample size falls towards 1), the negatives become easier to
  reject, and the term is biased upwards (see tests/test_demi.py and the
  'optimal critic' column of experiments/demi.py's 'DEMI (resampled)' rows).

  Args:
    critic_fns: T broadcasting critics ``f_t(x, y) -> scores``.
    x: (K, dx) batch of x; y: (K, dy) the paired y.
    masks: (T, dx) nested 0/1 subview masks (``prefix_masks``).
    key: PRNG key for the negatives.
    negatives: 'oracle', 'resample' or 'reweight'.
    oracle_samplers: T - 1 samplers ``(key, x, n) -> (K, n, dy)`` of p(y | x^(t-1)),
      for 'oracle' (``GaussianViews.conditional_sampler(masks[t-1])``).
    num_negatives: negatives per example for 'oracle'/'resample' (default
      K - 1, so that each conditional term has the InfoNCE's K candidates).

  Returns:
    (terms, diagnostics): terms (T,) estimates in nats (their sum is the DEMI
    estimate); diagnostics holds 'ess' (T - 1,), the mean effective sample
    size of the importance weights of each conditional term (NaN for 'oracle').
  """
  masks = check_masks(masks, x.shape[1])
  if len(critic_fns) != len(masks):
    raise ValueError(f'need one critic per subview: {len(masks)} masks, got '
                     f'{len(critic_fns)} critics')
  if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
    raise ValueError(f'x and y must be (K, dx) and (K, dy) batches, got shapes '
                     f'{x.shape} and {y.shape}')
  if negatives not in NEGATIVES:
    raise ValueError(f'unknown negatives {negatives!r}; valid: {", ".join(NEGATIVES)}')
  num_terms, k = len(masks), x.shape[0]
  if negatives == 'oracle' and (oracle_samplers is None
                                or len(oracle_samplers) != num_terms - 1):
    raise ValueError(f"negatives='oracle' needs {num_terms - 1} oracle_samplers, "
                     f'got {None if oracle_samplers is None else len(oracle_samplers)}')
  num_negatives = k - 1 if num_negatives is None else num_negatives
  masks = jnp.asarray(masks)

  views = [x * masks[t] for t in range(num_terms)]
  first = pairwise_scores(critic_fns[0], views[0], y)
  log_ratio = jax.lax.stop_gradient(first)   # ψ_1(x_i, y_j)
  conditional, ess = [], []
  keys = jax.random.split(key, max(num_terms - 1, 1))
  # others[i] = every column j != i, in order (static: K is known when tracing).
  j = np.arange(k - 1)[None, :]
  others = jnp.asarray(j + (j >= np.arange(k)[:, None]))
  for t in range(1, num_terms):
    f = critic_fns[t]
    if negatives == 'oracle':
      y_neg = jax.lax.stop_gradient(
          oracle_samplers[t - 1](keys[t - 1], x, num_negatives))
      conditional.append((f(views[t], y), set_scores(f, views[t], y_neg)))
      ess.append(jnp.asarray(jnp.nan))
      continue
    scores = pairwise_scores(f, views[t], y)
    pos = jnp.diagonal(scores)
    ess.append(jnp.mean(effective_sample_size(log_ratio)))
    if negatives == 'resample':
      idx = importance_resample(keys[t - 1], log_ratio, num_negatives)
      conditional.append((pos, jnp.take_along_axis(scores, idx, axis=1)))
    else:  # 'reweight'
      conditional.append((pos, jnp.take_along_axis(scores, others, axis=1),
                          jnp.take_along_axis(log_ratio, others, axis=1)))
    log_ratio = log_ratio + jax.lax.stop_gradient(scores)
  terms = bounds.demi_terms(first, conditional)
  return terms, {'ess': jnp.stack(ess) if ess else jnp.zeros((0,))}


# ---------------------------------------------------- training objectives --

# DEMI training objectives by name -> the negatives of their conditional terms
# (``estimate_terms``); 'infonce' trains one critic on all of x (the baseline).
METHODS: dict[str, Optional[str]] = {
    'infonce': None,
    'demi_oracle': 'oracle',
    'demi_resample': 'resample',
    'demi_reweight': 'reweight',
}
METHOD_LABELS = {'infonce': 'InfoNCE', 'demi_oracle': 'DEMI (oracle)',
                 'demi_resample': 'DEMI (resampled)',
                 'demi_reweight': 'DEMI (reweighted)'}


def method_masks(method: str, masks) -> np.ndarray:
  """The subview masks ``method`` trains on: ``masks``, or all of x for 'infonce'."""
  masks = np.asarray(masks, np.float32)
  if registry.lookup(METHODS, method, 'method') is None:
    return np.ones((1, masks.shape[-1]), np.float32)
  return masks


def chain_objective(apply_term: Callable[[Any, int, Array, Array], Array], masks,
                    method: str, *,
                    oracle_samplers: Optional[Sequence[Callable[..., Array]]] = None,
                    total: str = 'estimate') -> tuple[Callable, Callable]:
  """The estimate and the training loss of a chain of T critics under ``method``.

  Args:
    apply_term: ``(params, t, x, y) -> scores`` of critic t, broadcasting like
      the pair critics (``x[:, None], y[None]`` gives the (K, K) matrix).
    masks: the (T, dx) subview masks of the method (``method_masks``).
    method: a name of ``METHODS``.
    oracle_samplers: the T - 1 samplers of 'demi_oracle'
      (``GaussianViews.oracle_samplers``).
    total: the name of the summed estimate among the metrics.

  Returns:
    ``(estimate, loss)``. ``estimate(params, batch, key)`` on a batch
    ``{'x': (K, dx), 'y': (K, dy)}`` returns the metrics ``{total: the sum of
    the terms, 'term_t': term t (t = 1..T), 'ess_t': the mean effective
    sample size of term t's importance weights (t = 2..T, except with oracle
    negatives, which have none)}``; ``loss(params, aux, batch, key) ->
    (-metrics[total], (metrics, aux))`` is a ``train.Task`` loss.
  """
  negatives = registry.lookup(METHODS, method, 'method')
  masks = check_masks(masks, np.shape(masks)[-1])
  num_terms = len(masks)
  if negatives is None and num_terms != 1:
    raise ValueError(f"method 'infonce' trains one critic on all of x: need one "
                     f'mask (method_masks), got {num_terms}')

  def estimate(params, batch: dict[str, Array], key: Array) -> dict[str, Array]:
    fns = [functools.partial(apply_term, params, t) for t in range(num_terms)]
    terms, diagnostics = estimate_terms(
        fns, batch['x'], batch['y'], masks, key,
        negatives=negatives or 'resample', oracle_samplers=oracle_samplers)
    metrics = {total: jnp.sum(terms)}
    metrics.update({f'term_{t + 1}': terms[t] for t in range(num_terms)})
    if negatives != 'oracle':   # oracle negatives carry no weights (NaN ESS)
      metrics.update({f'ess_{t + 2}': diagnostics['ess'][t]
                      for t in range(num_terms - 1)})
    return metrics

  def loss(params, aux, batch, key):
    metrics = estimate(params, batch, key)
    return -metrics[total], (metrics, aux)

  return estimate, loss


def batch_mean(estimate: Callable, sample: Callable) -> Callable:
  """Jitted ``(params, data, keys) -> mean metrics of ``estimate`` over batches``.

  Batch i is ``sample(data, k)`` and its negatives are drawn from ``k'``,
  where ``(k, k') = split(keys[i])``: fixed keys
  (``evaluation.eval_keys``) give the same batches at every evaluation.
  """
  @jax.jit
  def mean(params, data, keys):
    def one(key):
      data_key, negatives_key = jax.random.split(key)
      return estimate(params, sample(data, data_key), negatives_key)
    return jax.tree.map(jnp.mean, jax.lax.map(one, keys))
  return mean
