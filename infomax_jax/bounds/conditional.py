"""Conditional InfoNCE and the DEMI chain-rule estimator (Sordoni et al. 2021).

"Decomposed Mutual Information Estimation for Contrastive Representation
Learning", ICML 2021. Samplers of the negatives live in ``infomax_jax.demi``.
Unlike the estimators of ``core``, a conditional term's negatives differ per
example, so it takes (B,) positive and (B, N) negative scores rather than a
(K, K) matrix.
"""

from typing import Optional, Union

import jax
import jax.numpy as jnp

from infomax_jax.bounds import core

Array = jax.Array
ArrayLike = core.ArrayLike


def _check_conditional(positive_scores: ArrayLike, negative_scores: ArrayLike,
                       negative_log_weights: Optional[ArrayLike], fn: str):
  """Validates (B,) positives, (B, N) negatives and optional (B, N) log-weights."""
  for name, value in (('positive_scores', positive_scores),
                      ('negative_scores', negative_scores)):
    if not hasattr(value, 'shape'):
      raise TypeError(f'{fn}: {name} must be an array, got {type(value).__name__}')
  pos = core.as_float(positive_scores, f'{fn}: positive_scores')
  neg = core.as_float(negative_scores, f'{fn}: negative_scores')
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
  lw = core.as_float(negative_log_weights, f'{fn}: negative_log_weights')
  if lw.shape != neg.shape:
    raise ValueError(f'{fn}: negative_log_weights must have the shape of '
                     f'negative_scores {neg.shape}, got {lw.shape}')
  return pos, neg, lw.astype(neg.dtype)


def conditional_infonce(positive_scores: ArrayLike, negative_scores: ArrayLike, *,
                        negative_log_weights: Optional[ArrayLike] = None) -> Array:
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
  scores = core.check_scores(scores, 'demi')
  if scores.ndim != 2:
    raise ValueError(f'demi: scores must have shape (K, K), got {scores.shape}')
  terms = [core.infonce(scores)]
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
