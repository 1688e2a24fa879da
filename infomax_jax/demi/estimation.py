"""DEMI estimation: importance-resampled negatives, pair critics, the
per-term estimates of a chain of critics and its training objective."""

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import registry
from infomax_jax.demi.views import check_masks

Array = jax.Array

NEGATIVES = ('oracle', 'resample', 'reweight')


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
