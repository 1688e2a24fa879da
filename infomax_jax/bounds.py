"""Variational lower bounds (and proxies) of mutual information on score arrays.

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
through ``_exp_saturating``, which is exp(z) up to z = 60 and continues
linearly beyond (no float32 overflow; the gradient stays large and finite).

References:
  Donsker & Varadhan 1983; Nguyen, Wainwright & Jordan 2010 (NWJ);
  Nowozin et al. 2016 (f-GAN); van den Oord et al. 2018 (InfoNCE);
  Belghazi et al. 2018 (MINE); Hjelm et al. 2019 (DIM, JSD);
  Poole et al. 2019 (TUBA, alpha-interpolated bound); Song & Ermon 2020 (SMILE).
"""

import functools
import math
from typing import Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

from infomax_jax import registry

Array = jax.Array
ArrayLike = Union[jax.Array, float]

# exp(z) is exact below this and linear above: e^60 ~ 1e26 leaves room for
# sums over many pairs and slopes up to ~1e12 before float32 overflows.
_EXP_CAP = 60.0


# ----------------------------------------------------------------- helpers --

def _exp_saturating(z: Array) -> Array:
  """exp(z) for z <= 60, its first-order continuation e^60 (1 + z - 60) above."""
  c = jnp.asarray(_EXP_CAP, z.dtype)
  return jnp.where(z <= c, jnp.exp(jnp.minimum(z, c)), jnp.exp(c) * (1.0 + z - c))


def _as_float(x: ArrayLike, name: str) -> Array:
  """Casts to a floating array; low-precision floats are promoted to float32."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f'{name} must have a floating dtype, got {x.dtype}')
  if jnp.finfo(x.dtype).bits < 32:
    x = x.astype(jnp.float32)
  return x


def _check_scores(scores: ArrayLike, fn: str) -> Array:
  """Validates a (K, K) or (K, K, L) score array and returns it as float."""
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
  return _as_float(scores, f'{fn}: scores')


def _per_location(fn: Callable[..., Array]) -> Callable[..., Array]:
  """Lets a (K, K) estimator take (K, K, L) scores: mean over the L locations.

  Validates the scores first; extra arguments are shared by all locations.
  """

  @functools.wraps(fn)
  def wrapped(scores, *args, **kwargs):
    scores = _check_scores(scores, fn.__name__)
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

@_per_location
def dv(scores: Array) -> Array:
  """Donsker-Varadhan bound: E_J[f] - log E_M[e^f].

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
  return 1.0 + joint_mean(shifted) - _exp_saturating(marginal_logmeanexp(shifted))


def _check_baseline(log_baseline: ArrayLike, k: int, fn: str) -> Array:
  a = _as_float(log_baseline, f'{fn}: log_baseline')
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
  scores = _check_scores(scores, 'tuba')
  a = _check_baseline(log_baseline, scores.shape[0], 'tuba')
  return _per_location(_tuba_kk)(scores, a)


def nwj(scores: ArrayLike) -> Array:
  """NWJ / f-KL / MINE-f bound: E_J[f] - E_M[e^{f - 1}] (= TUBA with a = 1).

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.

  Returns:
    Scalar estimate in nats.
  """
  scores = _check_scores(scores, 'nwj')
  return _per_location(_tuba_kk)(scores, jnp.ones((), scores.dtype))


@_per_location
def infonce(scores: Array) -> Array:
  """InfoNCE / CPC bound: log K + (1/K) sum_i [f_ii - logsumexp_j f_ij].

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


@_per_location
def jsd(scores: Array) -> Array:
  """Jensen-Shannon proxy of DIM (Hjelm et al. 2019, Eq. 4).

  E_J[-sp(-f)] - E_M[sp(f)] with sp(z) = log(1 + e^z). This equals the f-GAN
  ``gan`` bound, i.e. 2 JS(P||Q) - log 4 at the optimal critic; it is a
  training objective, not an MI estimate: report ``nwj``/``infonce`` beside it.

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
  marg_term = _exp_saturating(marginal_logmeanexp(marg))
  # Positives (x_j, y_j) against the baseline of y_j leaving out each x_i, i != j.
  joint = jnp.diagonal(scores)[None, :] - base
  joint_term = marginal_mean(joint)
  return 1.0 + joint_term - marg_term


def interpolated(scores: ArrayLike, log_baseline: ArrayLike,
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
    alpha: interpolation weight in (0, 1) (or exactly 0 or 1).

  Returns:
    Scalar estimate in nats.
  """
  scores = _check_scores(scores, 'interpolated')
  a = _check_baseline(log_baseline, scores.shape[0], 'interpolated')
  if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
    raise ValueError(f'interpolated: alpha must lie in [0, 1], got {alpha}')
  alpha = jnp.asarray(alpha, scores.dtype)
  return _per_location(_interpolated_kk)(scores, a, alpha)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _smile_kk(scores: Array, clip: float | None) -> Array:
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


def smile(scores: ArrayLike, clip: float | None = 5.0) -> Array:
  """SMILE (Song & Ermon 2020): DV with the log-partition scores clipped to [-tau, tau].

      value    = E_J[f] - log E_M[e^{clip(f, -tau, tau)}]
      gradient = gradient of the JS bound ``jsd`` (as the reference code).

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.
    clip: tau > 0, or None / inf for no clipping (then the value is DV).

  Returns:
    Scalar estimate in nats.
  """
  scores = _check_scores(scores, 'smile')
  if clip is not None and not clip > 0:
    raise ValueError(f'smile: clip must be > 0 or None, got {clip}')
  if clip is not None and math.isinf(clip):
    clip = None
  return _per_location(_smile_kk)(scores, clip)


class MineState(NamedTuple):
  """MINE's moving average of E_M[e^f], carried in log space (no overflow).

  Attributes:
    log_ema: log of the exponential moving average, shape () or (L,).
    count: number of updates so far (the first update initialises the EMA).
  """
  log_ema: Array
  count: Array


def mine_init(num_locations: int | None = None) -> MineState:
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


def mine(scores: ArrayLike, state: MineState,
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
  scores = _check_scores(scores, 'mine')
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


# ------------------------------------------------------ f-GAN divergences --

def _lambertw_exp_impl(z: Array) -> Array:
  """W(e^z), the principal Lambert W of e^z, by Newton on w + log w = z."""
  tiny = z < -20.0       # W(e^z) = e^z (1 - e^z + ...): e^z is exact to 1e-9
  zs = jnp.where(tiny, 0.0, z)
  w = jnp.where(zs < 1.0, jnp.exp(jnp.minimum(zs, 1.0)),
                jnp.maximum(zs, 1.0) - jnp.log(jnp.maximum(zs, 1.0)))
  for _ in range(12):   # quadratic convergence from this start; 12 is plenty
    w = w * (1.0 + zs - jnp.log(w)) / (1.0 + w)
  return jnp.where(tiny, jnp.exp(z), w)


@jax.custom_jvp
def lambertw_exp(z: Array) -> Array:
  """W(e^z) for real z, finite for all float32 z (used by the Jeffrey conjugate)."""
  return _lambertw_exp_impl(z)


@lambertw_exp.defjvp
def _lambertw_exp_jvp(primals, tangents):
  (z,), (dz,) = primals, tangents
  w = _lambertw_exp_impl(z)
  return w, dz * w / (1.0 + w)   # d/dz W(e^z) = W / (1 + W)


def _jeffrey_conjugate(v: Array) -> Array:
  # f*(t) = W(e^{1-t}) + 1/W(e^{1-t}) + t - 2, and 1/W(e^z) = e^{W(e^z) - z}.
  z = 1.0 - v
  w = lambertw_exp(z)
  return w + _exp_saturating(w - z) + v - 2.0


LOG2 = math.log(2.0)

# name -> (E_P term g_f(v), E_Q term f*(g_f(v))) with the compositions
# simplified analytically (Nowozin et al. 2016, Table 2).
_F_DIVERGENCES: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    'total_variation': (lambda v: 0.5 * jnp.tanh(v), lambda v: 0.5 * jnp.tanh(v)),
    'kl': (lambda v: v, lambda v: _exp_saturating(v - 1.0)),
    'reverse_kl': (lambda v: -_exp_saturating(-v), lambda v: v - 1.0),
    'pearson': (lambda v: v, lambda v: 0.25 * v * v + v),
    'neyman': (lambda v: 1.0 - _exp_saturating(-v),
               lambda v: 2.0 - 2.0 * _exp_saturating(-0.5 * v)),
    'squared_hellinger': (lambda v: 1.0 - _exp_saturating(-v),
                          lambda v: _exp_saturating(v) - 1.0),
    'jeffrey': (lambda v: v, _jeffrey_conjugate),
    'jensen_shannon': (lambda v: LOG2 - jax.nn.softplus(-v),
                       lambda v: jax.nn.softplus(v) - LOG2),
    'gan': (lambda v: -jax.nn.softplus(-v), jax.nn.softplus),
}

F_DIVERGENCES = tuple(sorted(_F_DIVERGENCES))


def _divergence_terms(divergence: str):
  if divergence not in _F_DIVERGENCES:
    raise ValueError(f'unknown divergence {divergence!r}; valid divergences are: '
                     f'{", ".join(F_DIVERGENCES)}')
  return _F_DIVERGENCES[divergence]


def f_divergence(t_p: ArrayLike, t_q: ArrayLike, divergence: str) -> Array:
  """f-GAN variational lower bound D_f(P||Q) >= E_P[g_f(v)] - E_Q[f*(g_f(v))].

  Args:
    t_p: raw critic outputs v on samples of P, any shape (averaged).
    t_q: raw critic outputs v on samples of Q, any shape (averaged).
    divergence: one of ``F_DIVERGENCES``: total_variation, kl, reverse_kl,
      pearson, neyman, squared_hellinger, jeffrey, jensen_shannon, gan
      (Nowozin et al. 2016, Table 2 parametrisation; jensen_shannon bounds
      2 JS(P||Q), gan bounds 2 JS(P||Q) - log 4, total_variation bounds
      (1/2) int |p - q|).

  Returns:
    Scalar lower bound (nats for the KL-type divergences).
  """
  g, conj = _divergence_terms(divergence)
  t_p, t_q = _as_float(t_p, 'f_divergence: t_p'), _as_float(t_q, 't_q')
  if t_p.size == 0 or t_q.size == 0:
    raise ValueError(f'f_divergence: t_p and t_q must be non-empty, got shapes '
                     f'{t_p.shape} and {t_q.shape}')
  return jnp.mean(g(t_p)) - jnp.mean(conj(t_q))


def f_divergence_scores(scores: ArrayLike, divergence: str) -> Array:
  """``f_divergence`` on a score matrix: P = joint (diagonal), Q = marginals.

  With D = KL this lower-bounds I(X; Y). The Q average runs exactly over the
  K(K-1) off-diagonal entries; (K, K, L) scores give the mean over locations.

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.
    divergence: see ``f_divergence``.

  Returns:
    Scalar lower bound on D_f(p(x, y) || p(x) p(y)).
  """
  g, conj = _divergence_terms(divergence)

  @_per_location
  def bound(s):
    return joint_mean(g(s)) - marginal_mean(conj(s))

  bound.__name__ = 'f_divergence_scores'
  return bound(scores)


# ----------------------------------------------------------------- registry --

# Estimators whose only argument is the score array (others take a baseline,
# a clip or a state; experiments build them with ``get``).
BOUNDS: dict[str, Callable[..., Array]] = {
    'dv': dv,
    'nwj': nwj,
    'infonce': infonce,
    'jsd': jsd,
    'tuba': tuba,
    'interpolated': interpolated,
    'smile': smile,
    'mine': mine,
}


def get(name: str) -> Callable[..., Array]:
  """The estimator named ``name`` (see ``BOUNDS``); unknown names list the valid ones."""
  return registry.lookup(BOUNDS, name, 'bound')


# ===================================================================== DEMI ==
# Conditional InfoNCE and the DEMI chain-rule estimator (Sordoni et al. 2021,
# "Decomposed Mutual Information Estimation for Contrastive Representation
# Learning", ICML). Samplers of the negatives live in ``infomax_jax.demi``.
# Unlike the estimators above, a conditional term's negatives differ per
# example, so it takes (B,) positive and (B, N) negative scores rather than a
# (K, K) matrix.

def _check_conditional(positive_scores: ArrayLike, negative_scores: ArrayLike,
                       negative_log_weights: ArrayLike | None, fn: str):
  """Validates (B,) positives, (B, N) negatives and optional (B, N) log-weights."""
  for name, value in (('positive_scores', positive_scores),
                      ('negative_scores', negative_scores)):
    if not hasattr(value, 'shape'):
      raise TypeError(f'{fn}: {name} must be an array, got {type(value).__name__}')
  pos = _as_float(positive_scores, f'{fn}: positive_scores')
  neg = _as_float(negative_scores, f'{fn}: negative_scores')
  if pos.ndim != 1:
    raise ValueError(f'{fn}: positive_scores must have shape (B,), got {pos.shape}')
  if neg.ndim != 2 or neg.shape[0] != pos.shape[0] or neg.shape[1] < 1:
    raise ValueError(
        f'{fn}: negative_scores must have shape (B, N) = ({pos.shape[0]}, N) with '
        f'N >= 1 (B from positive_scores {pos.shape}), got {neg.shape}')
  dtype = jnp.promote_types(pos.dtype, neg.dtype)
  pos, neg = pos.astype(dtype), neg.astype(dtype)
  if negative_log_weights is None:
    return pos, neg, None
  lw = _as_float(negative_log_weights, f'{fn}: negative_log_weights')
  if lw.shape != neg.shape:
    raise ValueError(f'{fn}: negative_log_weights must have the shape of '
                     f'negative_scores {neg.shape}, got {lw.shape}')
  return pos, neg, lw.astype(neg.dtype)


def conditional_infonce(positive_scores: ArrayLike, negative_scores: ArrayLike, *,
                        negative_log_weights: ArrayLike | None = None) -> Array:
  """Conditional InfoNCE lower bound on I(x''; y | x') (DEMI, Sordoni et al. 2021).

  With f_i1 = f(x_i', x_i'', y_i1) for the positive y_i1 ~ p(y | x_i', x_i'')
  and f_ik, k = 2..K, for the negatives y_ik ~ p(y | x_i'):

      I(x''; y | x') >= log K + (1/B) sum_i [f_i1 - logsumexp_{k=1..K} f_ik].

  Never above log K (K = N + 1 candidates: the positive and N negatives).
  With ``negative_log_weights`` (negatives drawn from p(y) instead, e.g. the
  other in-batch y's) the negatives carry self-normalised importance weights
  w_ik = N softmax_k(l_ik), l_ik ≈ log p(y_ik | x_i') / p(y_ik) + c(x_i'):

      log K + (1/B) sum_i [f_i1 - log(e^{f_i1} + sum_{k>=2} w_ik e^{f_ik})],

  a consistent (in N) approximation of the bound rather than a bound.

  Args:
    positive_scores: (B,) critic scores of the positive pairs.
    negative_scores: (B, N) scores of each example's N negatives.
    negative_log_weights: optional (B, N) unnormalised log importance weights
      of the negatives (no gradient flows through them).

  Returns:
    Scalar estimate in nats.
  """
  pos, neg, lw = _check_conditional(positive_scores, negative_scores,
                                    negative_log_weights, 'conditional_infonce')
  n = neg.shape[1]
  if lw is not None:
    lw = jax.lax.stop_gradient(lw)
    neg = neg + jnp.log(float(n)) + jax.nn.log_softmax(lw, axis=1)
  logits = jnp.concatenate([pos[:, None], neg], axis=1)
  return jnp.log(float(n + 1)) + jnp.mean(pos - jax.nn.logsumexp(logits, axis=1))


ConditionalScores = Union[tuple[ArrayLike, ArrayLike],
                          tuple[ArrayLike, ArrayLike, ArrayLike]]
ConditionalScoresSeq = Union[tuple[ConditionalScores, ...], list[ConditionalScores]]


def demi_terms(scores: ArrayLike,
               conditional_scores: ConditionalScoresSeq = ()) -> Array:
  """The chain-rule terms of DEMI: [I(x^(1); y), I(x^(2); y | x^(1)), ...].

  Term 1 is ``infonce(scores)``; term t >= 2 is ``conditional_infonce`` of the
  t-th entry of ``conditional_scores``.

  Args:
    scores: (K, K) in-batch scores f_1(x_i^(1), y_j), positives on the diagonal.
    conditional_scores: for each further subview, a tuple (positive (B,),
      negatives (B, N)) or (positive, negatives, negative_log_weights).

  Returns:
    (T,) estimates in nats, T = 1 + len(conditional_scores).
  """
  scores = _check_scores(scores, 'demi')
  if scores.ndim != 2:
    raise ValueError(f'demi: scores must have shape (K, K), got {scores.shape}')
  terms = [infonce(scores)]
  for t, entry in enumerate(conditional_scores):
    if not isinstance(entry, (tuple, list)) or len(entry) not in (2, 3):
      raise ValueError(
          f'demi: conditional_scores[{t}] must be (positive, negatives) or '
          f'(positive, negatives, negative_log_weights), got {type(entry).__name__}'
          f'{"" if not isinstance(entry, (tuple, list)) else f" of length {len(entry)}"}')
    pos, neg, *lw = entry
    terms.append(conditional_infonce(
        pos, neg, negative_log_weights=lw[0] if lw else None).astype(terms[0].dtype))
  return jnp.stack(terms)


def demi(scores: ArrayLike,
         conditional_scores: ConditionalScoresSeq = ()) -> Array:
  """DEMI estimate (Sordoni et al. 2021): the chain rule over nested subviews.

      I(x; y) = I(x^(1); y) + sum_{t>=2} I(x^(t); y | x^(t-1))
              >= infonce(f_1) + sum_{t>=2} conditional_infonce(f_t),

  each term capped at log K, so the sum can exceed log K (up to T log K).

  Args:
    scores: (K, K) in-batch scores of the first (least informed) subview.
    conditional_scores: see ``demi_terms``.

  Returns:
    Scalar estimate in nats.
  """
  return jnp.sum(demi_terms(scores, conditional_scores))
