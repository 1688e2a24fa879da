"""MI bounds on a rectangular score matrix whose positives are given by a mask.

Graph objectives score node embeddings against summaries: DGI one summary
against real and corrupted nodes, InfoGraph every node of a batch against
every graph. ``masked_bound`` evaluates the JSD, InfoNCE, DV and NWJ
estimators of ``infomax_jax.bounds`` there; it reduces exactly to
``bounds.jsd`` / ``infonce`` / ``dv`` / ``nwj`` when the mask is the identity.
"""

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from infomax_jax import bounds
from infomax_jax import registry

Array = jax.Array


def _check_masked(scores: Any, positive_mask: Any,
                  negative_mask: Any) -> tuple[Array, Array, Array]:
  if not hasattr(scores, 'shape'):
    raise TypeError(f'masked_bound: scores must be an array, got '
                    f'{type(scores).__name__}')
  if len(scores.shape) != 2:
    raise ValueError(f'masked_bound: scores must have shape (R, C), got '
                     f'{scores.shape}')
  scores = jnp.asarray(scores)
  if not jnp.issubdtype(scores.dtype, jnp.floating):
    raise ValueError(f'masked_bound: scores must have a floating dtype, got '
                     f'{scores.dtype}')
  if jnp.finfo(scores.dtype).bits < 32:
    scores = scores.astype(jnp.float32)
  masks = []
  for name, mask in (('positive_mask', positive_mask),
                     ('negative_mask', negative_mask)):
    if mask is None:
      masks.append(None)
      continue
    if not hasattr(mask, 'shape') or tuple(mask.shape) != tuple(scores.shape):
      raise ValueError(f'masked_bound: {name} must have the shape of scores '
                       f'{tuple(scores.shape)}, got '
                       f'{getattr(mask, "shape", type(mask).__name__)}')
    if jnp.asarray(mask).dtype != jnp.bool_:
      raise TypeError(f'masked_bound: {name} must be boolean, got dtype '
                      f'{jnp.asarray(mask).dtype}')
    masks.append(jnp.asarray(mask))
  pos, neg = masks
  if neg is None:
    neg = ~pos
  concrete = not any(isinstance(m, jax.core.Tracer) for m in (pos, neg))
  if concrete:
    if not bool(jnp.any(pos)) or not bool(jnp.any(neg)):
      raise ValueError(f'masked_bound: need at least one positive and one '
                       f'negative pair, got {int(jnp.sum(pos))} and '
                       f'{int(jnp.sum(neg))}')
    if bool(jnp.any(pos & neg)):
      raise ValueError('masked_bound: positive_mask and negative_mask overlap')
  return scores, pos, neg


def masked_mean(values: Array, mask: Array) -> Array:
  """Mean of ``values`` over the True entries of ``mask`` (0 if none)."""
  total = jnp.sum(jnp.where(mask, values, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1).astype(values.dtype)


def masked_logmeanexp(scores: Array, mask: Array) -> Array:
  """log of the mean of e^scores over the True entries of ``mask``."""
  count = jnp.sum(mask).astype(scores.dtype)
  return jax.nn.logsumexp(jnp.where(mask, scores, -jnp.inf)) - jnp.log(count)


def _masked_jsd(s: Array, pos: Array, neg: Array) -> Array:
  return (-masked_mean(jax.nn.softplus(-s), pos)
          - masked_mean(jax.nn.softplus(s), neg))


def _masked_dv(s: Array, pos: Array, neg: Array) -> Array:
  return masked_mean(s, pos) - masked_logmeanexp(s, neg)


def _masked_nwj(s: Array, pos: Array, neg: Array) -> Array:
  # Same saturating exponential as bounds.nwj (finite for huge scores).
  exp = bounds.exp_saturating(s - 1.0)
  return masked_mean(s, pos) - masked_mean(exp, neg)


def _masked_infonce(s: Array, pos: Array, neg: Array) -> Array:
  # Every positive (i, j) is classified against the negatives of its row i:
  # log(1 + n_i) + f_ij - log(e^{f_ij} + sum_{k in neg(i)} e^{f_ik}).
  neg_lse = jax.nn.logsumexp(jnp.where(neg, s, -jnp.inf), axis=1, keepdims=True)
  n_neg = jnp.sum(neg, axis=1, keepdims=True).astype(s.dtype)
  terms = jnp.log1p(n_neg) + s - jnp.logaddexp(s, neg_lse)
  return masked_mean(terms, pos)


MASKED_BOUNDS: dict[str, Callable[[Array, Array, Array], Array]] = {
    'jsd': _masked_jsd,
    'infonce': _masked_infonce,
    'dv': _masked_dv,
    'nwj': _masked_nwj,
}


def masked_bound(scores: Array, positive_mask: Array,
                 negative_mask: Optional[Array] = None, *,
                 bound: str = 'jsd') -> Array:
  """An MI bound on a rectangular score matrix with positives given by a mask.

  ``scores[i, j] = f(a_i, b_j)``; ``positive_mask[i, j]`` marks joint pairs,
  ``negative_mask`` (default: every other entry) marks product-of-marginals
  pairs; entries in neither (padding) are ignored. With E_P / E_N the means
  over the positive / negative entries:

  * jsd:     E_P[-sp(-f)] - E_N[sp(f)]
  * dv:      E_P[f] - log E_N[e^f]
  * nwj:     E_P[f] - E_N[e^{f - 1}]
  * infonce: E_P[log(1 + n_i) + f_ij - log(e^{f_ij} + sum_{k in N_i} e^{f_ik})],
    each positive classified against the n_i negatives of its own row.

  With the identity as ``positive_mask`` on a (K, K) matrix these are exactly
  ``bounds.jsd``, ``dv``, ``nwj`` and ``infonce``. Unlike multiplying scores by
  the mask (the original InfoGraph code, correct only for JSD, whose terms
  vanish at f = 0), masked entries never enter a log-sum-exp or a mean.

  Args:
    scores: (R, C) float scores.
    positive_mask: (R, C) bool.
    negative_mask: (R, C) bool or None (= ~positive_mask); must not overlap
      ``positive_mask``.
    bound: 'jsd', 'infonce', 'dv' or 'nwj'.

  Returns:
    Scalar estimate in nats (the training loss is its negative). There must
    be at least one positive and one negative pair (checked when the masks are
    concrete; InfoNCE needs a negative in every row that has a positive).
  """
  fn = registry.lookup(MASKED_BOUNDS, bound, 'masked bound')
  scores, pos, neg = _check_masked(scores, positive_mask, negative_mask)
  return fn(scores, pos, neg)
