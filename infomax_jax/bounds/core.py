"""Variational bounds (and proxies) of mutual information on a score matrix.

Every estimator is a pure, jit-able function of a score array

    scores[i, j] = f(x_i, y_j),   shape (K, K),

whose diagonal holds the K positive (joint) pairs and whose K(K-1) off-diagonal
entries hold the negative (product-of-marginals) pairs. Every estimator returns
the *estimate* in nats (higher = more MI); a training loss is its negative.

Multi-location scores (Deep InfoMax local objectives) have shape (K, K, L):
``scores[i, j, l] = f(local_l(x_i), y_j)``. Every estimator accepts them and
returns the mean over the L locations of the per-location (K, K) estimate
(Hjelm et al. 2019, Eq. 6: the average MI between each location and Y).

Numerics: scores of dtype bfloat16/float16 are computed in float32. Values and
gradients stay finite for scores up to +-1e4 in float32: log-partitions are
log-sum-exps, off-diagonal averages use exact masks, and the few terms that are
a bare exponential of a score (NWJ, TUBA, the f-GAN KL conjugate, ...) go
through ``exp_saturating``, which is exp(z) up to z = 60 and continues
linearly beyond (no float32 overflow; the gradient stays large and finite).

References:
  Donsker & Varadhan 1983; Nguyen, Wainwright & Jordan 2010 (NWJ);
  van den Oord et al. 2018 (InfoNCE); Belghazi et al. 2018 (MINE);
  Hjelm et al. 2019 (DIM, JSD); Poole et al. 2019 (TUBA, alpha-interpolated
  bound); Song & Ermon 2020 (SMILE).
"""

import functools
import math
from typing import Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

Array = jax.Array
ArrayLike = Union[jax.Array, float]

# exp(z) is exact below this and linear above: e^60 ~ 1e26 leaves room for
# sums over many pairs and slopes up to ~1e12 before float32 overflows.
_EXP_CAP = 60.0


# ----------------------------------------------------------------- helpers --

def exp_saturating(z: Array) -> Array:
  """exp(z) for z <= 60, its first-order continuation e^60 (1 + z - 60) above."""
  c = jnp.asarray(_EXP_CAP, z.dtype)
  return jnp.where(z <= c, jnp.exp(jnp.minimum(z, c)), jnp.exp(c) * (1.0 + z - c))


def as_float(x: ArrayLike, name: str) -> Array:
  """``x`` as a floating array; bfloat16/float16 are promoted to float32.

  Raises:
    ValueError: ``x`` has a non-floating dtype (the message names ``name``).
  """
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f'{name} must have a floating dtype, got {x.dtype}')
  if jnp.finfo(x.dtype).bits < 32:
    x = x.astype(jnp.float32)
  return x


def check_scores(scores: ArrayLike, fn: str) -> Array:
  """Validates a (K, K) or (K, K, L) score array (K >= 2); returns it as float."""
  if not hasattr(scores, 'shape'):
    raise TypeError(f'{fn}: scores must be an array, got {type(scores).__name__}')
  shape = tuple(scores.shape)
  if len(shape) not in (2, 3):
    raise ValueError(
        f'{fn}: scores must have shape (K, K) or (K, K, L), got rank '
        f'{len(shape)} with shape {shape}')
  if shape[0] != shape[1]:
    raise ValueError(
        f'{fn}: scores must be square in its first two axes (K, K[, L]), got '
        f'shape {shape}')
  if shape[0] < 2:
    raise ValueError(
        f'{fn}: need K >= 2 samples (at least one negative pair), got K = '
        f'{shape[0]} (shape {shape})')
  return as_float(scores, f'{fn}: scores')


def per_location(fn: Callable[..., Array]) -> Callable[..., Array]:
  """Lets a (K, K) estimator take (K, K, L) scores: mean over the L locations.

  Validates the scores first; extra arguments are shared by all locations.
  """

  @functools.wraps(fn)
  def wrapped(scores, *args, **kwargs):
    scores = check_scores(scores, fn.__name__)
    if scores.ndim == 2:
      return fn(scores, *args, **kwargs)
    per_loc = jax.vmap(lambda s: fn(s, *args, **kwargs), in_axes=2)(scores)
    return jnp.mean(per_loc)

  return wrapped


def _eye(k: int) -> Array:
  return jnp.eye(k, dtype=bool)


def joint_mean(scores: Array) -> Array:
  """E_J[f]: the mean of the diagonal (positive pairs) of a (K, K) array."""
  return jnp.mean(jnp.diagonal(scores))


def marginal_mean(values: Array) -> Array:
  """E_M[.]: exact mean over the K(K-1) off-diagonal entries of a (K, K) array."""
  k = values.shape[0]
  return jnp.sum(jnp.where(_eye(k), 0.0, values)) / (k * (k - 1))


def marginal_logmeanexp(scores: Array) -> Array:
  """log E_M[e^f] over the off-diagonal entries, by a masked log-sum-exp."""
  k = scores.shape[0]
  masked = jnp.where(_eye(k), -jnp.inf, scores)
  return jax.nn.logsumexp(masked) - jnp.log(k * (k - 1.0))


# -------------------------------------------------------------- estimators --

@per_location
def dv(scores: Array) -> Array:
  """Donsker-Varadhan bound (Donsker & Varadhan 1983): E_J[f] - log E_M[e^f].

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.

  Returns:
    Scalar estimate in nats (float32 or wider).
  """
  return joint_mean(scores) - marginal_logmeanexp(scores)


def _tuba_kk(scores: Array, log_baseline: Array) -> Array:
  k = scores.shape[0]
  a = jnp.broadcast_to(log_baseline, (k,))
  shifted = scores - a[None, :]          # f(x_i, y_j) - a(y_j)
  return 1.0 + joint_mean(shifted) - exp_saturating(marginal_logmeanexp(shifted))


def _check_baseline(log_baseline: ArrayLike, k: int, fn: str) -> Array:
  a = as_float(log_baseline, f'{fn}: log_baseline')
  if a.ndim == 1 and a.shape[0] != k or a.ndim > 1:
    raise ValueError(
        f'{fn}: log_baseline must be a scalar or have shape (K,) = ({k},) '
        f'(one value per y_j), got shape {a.shape}')
  return a


def tuba(scores: ArrayLike, log_baseline: ArrayLike) -> Array:
  """TUBA bound (Poole et al. 2019, Eq. 8): 1 + E_J[f - a(y)] - E_M[e^{f - a(y)}].

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.
    log_baseline: a(y): a scalar (constant baseline) or (K,) values, one per
      column y_j (a learned baseline); shared across locations for 3-D scores.

  Returns:
    Scalar estimate in nats. With a(y) = 1 this is NWJ.
  """
  scores = check_scores(scores, 'tuba')
  a = _check_baseline(log_baseline, scores.shape[0], 'tuba')
  return per_location(_tuba_kk)(scores, a)


def nwj(scores: ArrayLike) -> Array:
  """NWJ / f-KL / MINE-f bound (Nguyen et al. 2010): E_J[f] - E_M[e^{f - 1}].

  Equals TUBA with a = 1.

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.

  Returns:
    Scalar estimate in nats.
  """
  scores = check_scores(scores, 'nwj')
  return per_location(_tuba_kk)(scores, jnp.ones((), scores.dtype))


@per_location
def infonce(scores: Array) -> Array:
  """InfoNCE / CPC bound (van den Oord et al. 2018).

      I_NCE = log K + (1/K) sum_i [f_ii - logsumexp_j f_ij]

  Each row i is a K-way classification of the positive y_i among all y_j.
  The estimate never exceeds log K.

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.

  Returns:
    Scalar estimate in nats.
  """
  k = scores.shape[0]
  return jnp.log(float(k)) + jnp.mean(
      jnp.diagonal(scores) - jax.nn.logsumexp(scores, axis=1))


@per_location
def jsd(scores: Array) -> Array:
  """Jensen-Shannon proxy of DIM (Hjelm et al. 2019, Eq. 4).

      E_J[-sp(-f)] - E_M[sp(f)],   sp(z) = log(1 + e^z).

  This equals the f-GAN ``gan`` bound, i.e. 2 JS(P||Q) - log 4 at the optimal
  critic f* = log p(x, y) / (p(x) p(y)); a training objective, not an MI
  estimate (the registry reports ``nwj(scores + 1)``, tight at f*).

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.

  Returns:
    Scalar value in nats.
  """
  return (-joint_mean(jax.nn.softplus(-scores))
          - marginal_mean(jax.nn.softplus(scores)))


def _loo_column_logmeanexp(scores: Array) -> Array:
  """L[i, j] = log (1/(K-1)) sum_{k != i} exp(scores[k, j]), exactly and stably.

  Removes row i from each column's log-sum-exp without cancellation: rows that
  are not the column's argmax subtract their term from a sum that keeps the
  argmax term (>= 1 after shifting by the max); the argmax row uses the sum of
  the other rows shifted by the second largest value. O(K^2).
  """
  k = scores.shape[0]
  s = scores
  top2 = jax.lax.stop_gradient(jax.lax.top_k(s.T, 2)[0])      # (K, 2) per column
  m1, m2 = top2[:, 0], top2[:, 1]
  is_max = jax.nn.one_hot(jnp.argmax(s, axis=0), k, dtype=bool).T  # (K, K)
  e1 = jnp.exp(s - m1[None, :])
  sum1 = jnp.sum(e1, axis=0)
  loo_other = m1[None, :] + jnp.log(jnp.maximum(sum1[None, :] - e1, 1e-30))
  # Non-max rows satisfy s <= m2; masking (not jnp.minimum, whose gradient is
  # 1/2 at the tie s = m2) keeps the second-largest entry's gradient exact.
  sum2 = jnp.sum(jnp.exp(jnp.where(is_max, -jnp.inf, s - m2[None, :])), axis=0)
  loo_max = m2 + jnp.log(sum2)
  loo = jnp.where(is_max, loo_max[None, :], loo_other)
  return loo - jnp.log(k - 1.0)


def _interpolated_kk(scores: Array, log_baseline: Array, alpha: Array) -> Array:
  k = scores.shape[0]
  a = jnp.broadcast_to(log_baseline, (k,))
  # Baseline for the pair (x_i, y_j): log[alpha m_{-i}(y_j) + (1-alpha) e^{a(y_j)}]
  # where m_{-i}(y_j) is the mean of e^f over the batch's x's other than x_i.
  loo = _loo_column_logmeanexp(scores)
  log_alpha, log_1m_alpha = jnp.log(alpha), jnp.log1p(-alpha)
  base = jnp.logaddexp(log_alpha + loo, log_1m_alpha + a[None, :])
  # Negatives (x_i, y_j), i != j: baseline of y_j computed without its positive x_j.
  marg = scores - jnp.diagonal(base)[None, :]
  marg_term = exp_saturating(marginal_logmeanexp(marg))
  # Positives (x_j, y_j) against the baseline of y_j leaving out each x_i, i != j.
  joint = jnp.diagonal(scores)[None, :] - base
  joint_term = marginal_mean(joint)
  return 1.0 + joint_term - marg_term


def interpolated(scores: ArrayLike, log_baseline: ArrayLike, *,
                 alpha: float) -> Array:
  """Poole et al. (2019, Eq. 12) alpha-interpolated bound between NWJ and InfoNCE.

  With m_{-i}(y_j) = (1/(K-1)) sum_{k != i} e^{f(x_k, y_j)} and the interpolated
  baseline b_ij = alpha m_{-i}(y_j) + (1 - alpha) e^{a(y_j)}:

      I_alpha = 1 + E_{i != j}[f_jj - log b_ij] - E_{i != j}[e^{f_ij} / b_jj].

  alpha = 0 with a = 1 is NWJ; alpha -> 1 is a leave-one-out InfoNCE whose
  partition runs over x for each y (columns). Its expectation is bounded by
  1 + log K - log alpha. Follows the reference implementation of Poole et al.
  (vbmi notebook), transposed to this module's rows-are-x convention.

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal; K >= 3
      is needed for a non-trivial leave-one-out mean.
    log_baseline: a(y), scalar or (K,) (one per column y_j).
    alpha: interpolation weight in [0, 1].

  Returns:
    Scalar estimate in nats.
  """
  scores = check_scores(scores, 'interpolated')
  a = _check_baseline(log_baseline, scores.shape[0], 'interpolated')
  if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
    raise ValueError(f'interpolated: alpha must lie in [0, 1], got {alpha}')
  alpha = jnp.asarray(alpha, scores.dtype)
  return per_location(_interpolated_kk)(scores, a, alpha)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _smile_kk(scores: Array, clip: Optional[float]) -> Array:
  clipped = scores if clip is None else jnp.clip(scores, -clip, clip)
  return joint_mean(scores) - marginal_logmeanexp(clipped)


@_smile_kk.defjvp
def _smile_kk_jvp(clip, primals, tangents):
  # SMILE's value is the clipped DV; its gradient is that of the JS f-GAN
  # bound (Song & Ermon 2020, reference code: js + stop_gradient(dv - js)).
  (scores,), (ds,) = primals, tangents
  value = _smile_kk(scores, clip)
  _, dvalue = jax.jvp(jsd, (scores,), (ds,))
  return value, dvalue


def smile(scores: ArrayLike, *, clip: Optional[float] = 5.0) -> Array:
  """SMILE (Song & Ermon 2020): DV with the log-partition scores clipped to [-tau, tau].

      value    = E_J[f] - log E_M[e^{clip(f, -tau, tau)}]
      gradient = gradient of the JS bound ``jsd`` (as the reference code).

  Not a lower bound on MI for a finite tau (the clipping biases the
  partition); tau = None / inf gives DV.

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.
    clip: tau > 0, or None / inf for no clipping (then the value is DV).

  Returns:
    Scalar estimate in nats.
  """
  scores = check_scores(scores, 'smile')
  if clip is not None and not clip > 0:
    raise ValueError(f'smile: clip must be > 0 or None, got {clip}')
  if clip is not None and math.isinf(clip):
    clip = None
  return per_location(_smile_kk)(scores, clip)


class MineState(NamedTuple):
  """MINE's moving average of E_M[e^f], carried in log space (no overflow).

  Attributes:
    log_ema: log of the exponential moving average, shape () or (L,).
    count: number of updates so far (the first update initialises the EMA).
  """
  log_ema: Array
  count: Array


def mine_init(num_locations: Optional[int] = None) -> MineState:
  """Initial MINE state for (K, K) scores, or (K, K, L) with num_locations=L."""
  shape = () if num_locations is None else (num_locations,)
  return MineState(jnp.zeros(shape, jnp.float32), jnp.zeros((), jnp.int32))


def _mine_kk(scores: Array, log_ema: Array, count: Array, momentum: Array):
  lme = marginal_logmeanexp(scores)
  new_log_ema = jnp.where(
      count == 0, lme,
      jnp.logaddexp(jnp.log(momentum) + log_ema, jnp.log1p(-momentum) + lme))
  new_log_ema = jax.lax.stop_gradient(new_log_ema)
  value = joint_mean(scores) - lme
  # Gradient: grad E_J[f] - grad E_M[e^f] / EMA (Belghazi et al. 2018, Sec. 3.2).
  surrogate = joint_mean(scores) - jnp.exp(lme - new_log_ema)
  # Value of DV, gradient of the surrogate only.
  value = (jax.lax.stop_gradient(value) + surrogate
           - jax.lax.stop_gradient(surrogate))
  return value, new_log_ema


def mine(scores: ArrayLike, state: MineState, *,
         momentum: float = 0.99) -> tuple[Array, MineState]:
  """MINE (Belghazi et al. 2018): the DV value with a bias-corrected gradient.

  The EMA v <- momentum v + (1 - momentum) E_M[e^f] (initialised by the first
  batch) replaces the batch mean in the denominator of the log-term's gradient:

      value    = E_J[f] - log E_M[e^f]
      gradient = grad E_J[f] - grad E_M[e^f] / v.

  Args:
    scores: (K, K) scores, or (K, K, L) with a state from ``mine_init(L)``
      (one EMA per location; the value is the mean over locations).
    state: the ``MineState`` returned by the previous call (or ``mine_init``).
    momentum: EMA momentum in [0, 1).

  Returns:
    (estimate, new_state).
  """
  scores = check_scores(scores, 'mine')
  if isinstance(momentum, (int, float)) and not 0.0 <= momentum < 1.0:
    raise ValueError(f'mine: momentum must lie in [0, 1), got {momentum}')
  if not isinstance(state, MineState):
    raise TypeError(f'mine: state must be a MineState (see mine_init), got '
                    f'{type(state).__name__}')
  momentum = jnp.asarray(momentum, jnp.float32)
  expected = () if scores.ndim == 2 else (scores.shape[2],)
  if state.log_ema.shape != expected:
    raise ValueError(f'mine: state.log_ema must have shape {expected} for scores '
                     f'of shape {scores.shape}, got {state.log_ema.shape}')
  log_ema = state.log_ema.astype(scores.dtype)
  if scores.ndim == 2:
    value, new = _mine_kk(scores, log_ema, state.count, momentum)
  else:
    values, new = jax.vmap(_mine_kk, in_axes=(2, 0, None, None))(
        scores, log_ema, state.count, momentum)
    value = jnp.mean(values)
  return value, MineState(new.astype(jnp.float32), state.count + 1)
