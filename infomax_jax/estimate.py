"""Estimate I(X; Y) from two arrays of samples with any bound and critic.

    result = estimate_mi(x, y)                     # InfoNCE, concat critic
    result = estimate_mi(x, y, bound='smile', critic='concat',
                         bound_kwargs={'clip': 5.0})
    print(result.mi, '+-', result.stderr)

What ``estimate_mi`` does:

1. Checks the inputs ((n, d) arrays, same n, finite values, enough samples),
   shuffles them and holds out a test split (``test_fraction``).
2. Standardises every coordinate with a monotone map fitted on the training
   split (``standardize``): by default the rank-Gaussian map
   v -> Phi^{-1}(F_n(v)) with F_n the empirical CDF, which gives every
   coordinate standard normal margins; or z-scores. MI is invariant to
   invertible per-coordinate maps, and the rank map makes the estimate
   invariant to them too: heavy tails (a z-scored Cauchy sample squashes its
   bulk into a tiny interval) and marginal distortions disappear before the
   critic sees the data. Unit scales keep the critic's initialisation and
   learning rate meaningful.
3. Trains the critic (``infomax_jax.critics``) by maximising the chosen bound
   (``infomax_jax.bounds``) with Adam on batches of ``batch_size`` pairs drawn
   without replacement (a fresh permutation per epoch). The whole optimisation
   is one jitted ``lax.while_loop`` over chunks of ``eval_every`` steps, each
   chunk a ``lax.scan``; between chunks the held-out estimate is computed on
   device, the best parameters are kept, and training stops after
   ``patience`` evaluations without improvement. There are no host round
   trips during training. Bounds with a baseline input (``tuba``,
   ``interpolated``) learn a(y) (a small MLP) jointly with the critic;
   stateful ones (``mine``) carry their state in the scan. Data parallel:
   the fit runs on a ``'data'`` mesh of every device (``mesh``); the samples
   and parameters are replicated, and every training batch and held-out batch
   is sharded over the devices along its K pairs (``parallel.shard_batch``; a
   K that does not divide over the devices stays replicated), so the K x K
   scores and the bounds still use the whole batch. On one device this
   changes nothing.
4. Reports the held-out estimate of the best parameters: the test split is cut
   into B disjoint batches of K = min(batch_size, n_test) pairs, the
   evaluation bound is computed on each batch's K x K score matrix, and

       mi = (1/B) sum_b I_b,    stderr = std_b(I_b) / sqrt(B).

5. Guards the result (see "Failures" below): an evaluation counts only when
   its estimate is finite, its scores are small enough for float32 to resolve
   the estimate, and it respects the bound's ceiling; the reported estimate is
   the best usable one.

Failures. ``estimate_mi`` never returns a number it knows to be meaningless.
A held-out evaluation is *unusable* when

* its estimate or its scores are not finite;
* its scores are too large for their dtype: with M = max |f| over the held-out
  score matrices (and the baseline a(y)), float32 rounds scores in steps of
  about eps M (eps = 1.2e-7), and the estimate is rounding noise once
  eps M > ``SCORE_RESOLUTION`` (0.05 nats, i.e. M > 4.2e5): InfoNCE's
  ``log K + mean(f_ii - logsumexp_j f_ij)`` loses its ``+ log K`` and the
  differences f_ii - f_ij, and returns log K (or anything) on independent
  samples;
* it exceeds the bound's ceiling (``ceiling``: log K for InfoNCE, K the
  held-out batch size) by more than ``CEILING_TOLERANCE`` plus eps M.

Unusable evaluations are never selected as the best, and count against the
patience. The fit *fails* when no evaluation was usable, when the training
bound became non-finite before the reported evaluation, or when the best
estimate is below ``FLOOR`` (-1 nat): every reported estimate in the registry
is 0 at a constant critic (InfoNCE, DV, MINE, SMILE at f = 0; NWJ, TUBA and the
NWJ reports of jsd and the f-divergences at the constant whose implied log
density ratio is 0), so a best estimate below -1 nat means that training
diverged, not that the MI is negative. A failure raises ``EstimationError``
(a ``RuntimeError``, and a ``FloatingPointError`` as non-finite estimates
raised before), whose message gives the reason, the bounds and the value that
would have been reported; ``on_failure='nan'`` instead returns an
``MIEstimate`` with ``mi`` = ``stderr`` = nan, ``failed=True`` and the
``reason`` (and warns). Warnings (``warnings.warn``), the estimate standing:
a ``CeilingWarning`` when the estimate is within ``NEAR_CEILING`` (5%) of the
bound's ceiling (the true MI may be far larger: use a larger batch_size or a
bound without a ceiling), and a ``RuntimeWarning`` when training diverged
after the reported evaluation or some evaluations were unusable.

Inputs. Non-finite samples raise a ValueError naming the array and the first
bad index. Standardisation is computed in float64 on the host (z-scores after
dividing each coordinate by its largest magnitude, so that nothing
overflows; a constant coordinate is centred and left unscaled) and only its
output is cast to float32; ``standardize='none'`` rejects samples beyond
float32's range.

Held-out estimator: the training bound's reported estimate in the registry
(``bounds.get(bound).estimate``): the value itself for dv, nwj, infonce, tuba,
interpolated and smile; DV for mine (MINE's value *is* DV; only its gradient
differs); for jsd (and the f-divergences) NWJ of the log density ratio its
critic implies, nwj(f + 1): the JS objective is not an MI estimate, but its
optimal critic is log p(x, y) / (p(x) p(y)), at which nwj(f + 1) is the MI.
``eval_bound`` names another registry entry whose estimate to report instead.

Caveats: the reported value is the held-out estimate at the evaluation that
scored best, so it carries a small upward selection bias (of the order of the
standard error; the estimates of successive evaluations are strongly
correlated). InfoNCE never exceeds log K; NWJ, DV, MINE and SMILE can exceed
the truth on a finite test batch (DV and SMILE through the log of a sample
mean).

References: Belghazi et al. 2018 (MINE); Poole et al. 2019 (bounds and
critics); Song & Ermon 2020 (SMILE); Czyz et al. 2023 (BMI benchmark).
"""

import dataclasses
import functools
import math
import time
from typing import Any, Mapping, NamedTuple
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import special

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import encoders
from infomax_jax import parallel
from infomax_jax import registry

Array = jax.Array

# Hidden widths of the learned baseline a(y) of bounds with a baseline input
# (``bound_kwargs['baseline_hidden']``); other hyperparameters: the registry's.
BASELINE_HIDDEN = (64,)

# Critic architecture used when ``critic_kwargs`` is None.
CRITIC_DEFAULTS: dict[str, dict[str, Any]] = {
    'separable': {'hidden': (64,), 'embed_dim': 16},
    'concat': {'hidden': (16, 8)},
    'bilinear': {},
    'inner_product': {},
}

_MIN_SPLIT = 16   # fewest samples allowed in the train and in the test split

# Guards (see the module docstring, "Failures").
SCORE_RESOLUTION = 0.05   # nats: largest rounding step eps * max|f| of a usable evaluation
CEILING_TOLERANCE = 1e-3  # nats an estimate may exceed its bound's ceiling (+ eps * max|f|)
FLOOR = -1.0              # nats: a best estimate below this is a failed fit
NEAR_CEILING = 0.05       # warn when an estimate is within this fraction of its ceiling
_LARGE_INPUT = 1e3        # standardised inputs beyond this are named in a failure's hint
ON_FAILURE = ('raise', 'nan')


class EstimationError(RuntimeError, FloatingPointError):
  """``estimate_mi`` produced no trustworthy estimate (diverged, unresolved, absurd).

  Attributes:
    reason: why, in words.
    bound: the training bound.
    eval_bound: the bound of the held-out estimate.
    value: the estimate that would have been reported without the guards (the
      largest finite held-out estimate; nan if none).
    result: the ``MIEstimate`` with ``failed=True`` (its curves show what
      happened).
  """

  def __init__(self, reason: str, *, bound: str, eval_bound: str, value: float,
               result: 'MIEstimate | None' = None):
    super().__init__(f'estimate_mi failed (bound={bound!r}, eval_bound='
                     f'{eval_bound!r}, unguarded estimate {value:.6g} nats): '
                     f'{reason}')
    self.reason, self.bound, self.eval_bound = reason, bound, eval_bound
    self.value, self.result = value, result

  def __reduce__(self):   # picklable (keyword-only fields), e.g. across processes
    return (functools.partial(EstimationError, bound=self.bound,
                              eval_bound=self.eval_bound, value=self.value,
                              result=self.result), (self.reason,))


class CeilingWarning(UserWarning):
  """The estimate is close to its bound's ceiling (InfoNCE: log K)."""


def ceiling(eval_bound: str, k: int) -> float:
  """The largest value ``eval_bound``'s estimate can take on K x K scores (inf: none)."""
  return math.log(k) if eval_bound == 'infonce' else math.inf


class MIEstimate(NamedTuple):
  """The result of ``estimate_mi``.

  Attributes:
    mi: held-out MI estimate in nats (at the best evaluation).
    stderr: its standard error over the B held-out batches (nan if B = 1).
    bound: the training bound.
    eval_bound: the bound used for the held-out estimate.
    critic: the critic's name.
    train_curve: (steps_run,) the training bound's value on each step's batch.
    eval_steps: (n_evals,) number of training steps at each evaluation.
    test_curve: (n_evals,) held-out estimate at each evaluation.
    best_step: training steps of the reported (best) evaluation.
    steps_run: training steps actually run (< ``steps`` if stopped early).
    stopped_early: whether the patience ran out before ``steps``.
    n_train: size of the training split.
    n_test: size of the test split.
    batch_size: K used for training and for the held-out batches.
    seconds: wall time of the call (including compilation).
    params: the best parameters: {'critic': ..., 'baseline': ...} pytree.
    score_curve: (n_evals,) max |score| (and |a(y)|) over the held-out batches
      at each evaluation: the guard against scores float32 cannot resolve.
    failed: True when the fit failed and ``on_failure='nan'`` returned this
      (then ``mi`` and ``stderr`` are nan); False otherwise.
    reason: why it failed ('' when it did not).
  """
  mi: float
  stderr: float
  bound: str
  eval_bound: str
  critic: str
  train_curve: np.ndarray
  eval_steps: np.ndarray
  test_curve: np.ndarray
  best_step: int
  steps_run: int
  stopped_early: bool
  n_train: int
  n_test: int
  batch_size: int
  seconds: float
  params: Any
  score_curve: np.ndarray | None = None
  failed: bool = False
  reason: str = ''


# ---------------------------------------------------------------- validation --

def _as_samples(a: Any, name: str) -> np.ndarray:
  """(n,) or (n, d) real array -> float64 (n, d) numpy array of finite values."""
  try:
    arr = np.asarray(a)
  except Exception as e:  # pylint: disable=broad-except
    raise TypeError(f'{name} must be an array of samples, got '
                    f'{type(a).__name__}') from e
  if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                 or np.issubdtype(arr.dtype, np.integer)
                                 or arr.dtype == bool):
    raise TypeError(f'{name} must hold real numbers, got dtype {arr.dtype}')
  one_d = arr.ndim == 1
  if one_d:
    arr = arr[:, None]
  if arr.ndim != 2:
    raise ValueError(f'{name} must have shape (n,) or (n, d), got shape '
                     f'{arr.shape}')
  if arr.shape[1] < 1:
    raise ValueError(f'{name} must have at least one column, got shape '
                     f'{arr.shape}')
  arr = arr.astype(np.float64)
  bad = ~np.isfinite(arr)
  if bad.any():
    rows = np.flatnonzero(bad.any(axis=1))
    i = int(rows[0])
    j = int(np.flatnonzero(bad[i])[0])
    raise ValueError(f'{name} has {int(bad.sum())} non-finite values (nan or '
                     f'inf) in {rows.size} samples; the first is '
                     f'{_index(name, i, j, one_d)} = {arr[i, j]}; drop or impute '
                     f'them first')
  return arr


def _index(name: str, i: int, j: int, one_d: bool) -> str:
  return f'{name}[{i}]' if one_d else f'{name}[{i}, {j}]'


def _check_float32_range(arr: np.ndarray, name: str, what: str,
                         rows: np.ndarray | None = None) -> None:
  """Raises a ValueError naming the first value of ``arr`` beyond float32's range.

  Args:
    arr: (n, d) float64 values.
    name: the array's name in the message.
    what: what the values are, and what to do about them (ends the message).
    rows: the original row index of each row of ``arr`` (default: its own).
  """
  big = np.abs(arr) > np.finfo(np.float32).max
  if big.any():
    i = int(np.flatnonzero(big.any(axis=1))[0])
    j = int(np.flatnonzero(big[i])[0])
    row = i if rows is None else int(rows[i])
    raise ValueError(
        f'{name} has {int(big.sum())} values beyond float32\'s range (|v| > '
        f'{np.finfo(np.float32).max:.3g}); the first is {name}[{row}, {j}] = '
        f'{arr[i, j]:.6g}: {what}')


def _check_positive_int(v: Any, name: str) -> int:
  if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
    raise ValueError(f'{name} must be a positive int, got {v!r}')
  return int(v)


def _freeze(v: Any) -> Any:
  """Lists -> tuples (recursively) so that hyperparameters are hashable."""
  if isinstance(v, (list, tuple)):
    return tuple(_freeze(e) for e in v)
  if isinstance(v, Mapping):
    return tuple(sorted((k, _freeze(e)) for k, e in v.items()))
  return v


def _bound_kwargs(spec: bounds.Bound, given: Mapping[str, Any] | None
                  ) -> tuple[dict[str, Any], tuple[int, ...] | None]:
  """(the bound's hyperparameters, its baseline's hidden widths or None)."""
  given = dict(given or {})
  valid = sorted([*spec.defaults, *(['baseline_hidden'] if spec.needs_baseline
                                    else [])])
  unknown = sorted(set(given) - set(valid))
  if unknown:
    raise ValueError(f'unknown bound_kwargs for {spec.name!r}: {unknown}; valid '
                     f'keys are: {", ".join(valid) or "none"}')
  hidden = given.pop('baseline_hidden', BASELINE_HIDDEN)
  return spec.options(given), tuple(hidden) if spec.needs_baseline else None


# ----------------------------------------------------------- preprocessing --

STANDARDIZATIONS = ('rank', 'zscore', 'none')


def _standardize(train: np.ndarray, test: np.ndarray,
                 how: str) -> tuple[np.ndarray, np.ndarray]:
  """Per-coordinate monotone maps fitted on the training split (MI-preserving).

  Computed in float64 (inputs: float64), returned in float64; nothing
  overflows for any finite float64 input.

  rank: v -> Phi^{-1}(F_n(v)), F_n the training split's empirical CDF at the
  levels (i + 1/2) / n, linearly interpolated between the sorted training
  values (standard normal margins, whatever the tails; test values outside
  the training range are clipped to it). zscore: (v - mean) / std, with v
  first divided by the coordinate's largest training magnitude (no overflow
  in the squares, whatever the scale); a constant coordinate is centred and
  not scaled. none: unchanged.
  """
  if how == 'none':
    return train, test
  if how == 'rank':
    n = train.shape[0]
    levels = _normal_ppf((np.arange(n) + 0.5) / n).astype(np.float32)
    out_train, out_test = np.empty_like(train), np.empty_like(test)
    for j in range(train.shape[1]):
      srt = np.sort(train[:, j])
      out_train[:, j] = np.interp(train[:, j], srt, levels)
      out_test[:, j] = np.interp(test[:, j], srt, levels)
    return out_train, out_test
  peak = np.max(np.abs(train), axis=0)
  peak = np.where(peak > 0, peak, 1.0)
  train, test = train / peak, test / peak
  center, scale = train.mean(0), train.std(0)
  scale = np.where((np.ptp(train, axis=0) > 0) & (scale > 0), scale, 1.0)
  return (train - center) / scale, (test - center) / scale


def _normal_ppf(p: np.ndarray) -> np.ndarray:
  """Phi^{-1}(p), the standard normal quantile function."""
  return np.sqrt(2.0) * special.erfinv(2.0 * np.asarray(p, np.float64) - 1.0)


# ------------------------------------------------------------------ training --

@dataclasses.dataclass(frozen=True)
class _Spec:
  """Everything static about one fit (hashable: the jit cache key)."""
  bound: str
  eval_bound: str
  critic: str
  critic_kwargs: tuple
  bound_kwargs: tuple
  eval_kwargs: tuple
  baseline_hidden: tuple | None
  batch_size: int
  eval_batch: int
  num_eval_batches: int
  chunk: int
  num_chunks: int
  patience: int
  learning_rate: float


class _Model(nn.Module):
  """The critic plus, for a bound with a baseline input, the baseline a(y)."""
  critic: str
  critic_kwargs: tuple
  baseline_hidden: tuple | None

  @nn.compact
  def __call__(self, x: Array, y: Array) -> tuple[Array, Array | None]:
    scores = critics.make_critic(self.critic, **dict(self.critic_kwargs))(x, y)
    if self.baseline_hidden is None:
      return scores, None
    a = encoders.MLP((*self.baseline_hidden, 1), name='baseline')(y)[:, 0]
    return scores, a


def _held_out_estimate(spec: _Spec, scores: Array, a: Array | None) -> Array:
  """The reported MI estimate of ``spec.eval_bound`` on one score matrix."""
  entry = bounds.get(spec.eval_bound)
  return entry.estimate(scores, log_baseline=a if entry.needs_baseline else None,
                        **dict(spec.eval_kwargs))


def _usable(est: Any, peak: Any, top: float, eps: float) -> Any:
  """Whether a held-out evaluation counts (numpy or jax; see "Failures").

  Args:
    est: the held-out estimate.
    peak: max |score| (and |a(y)|) over the held-out batches.
    top: the eval bound's ceiling (inf: none).
    eps: the scores' machine epsilon.
  """
  step = peak * eps
  return ((abs(est) < math.inf) & (abs(peak) < math.inf)
          & (step <= SCORE_RESOLUTION)
          & (est <= top + CEILING_TOLERANCE + step))


def _problem(est: float, peak: float, top: float, dtype: Any,
             eval_bound: str, k: int) -> str:
  """Why an evaluation is not ``_usable``, in words ('' when it is).

  Args:
    est: the held-out estimate.
    peak: max |score| (and |a(y)|) over the held-out batches.
    top: the eval bound's ceiling (inf: none).
    dtype: the scores' dtype.
    eval_bound: the eval bound's name.
    k: the held-out batch size K.
  """
  eps = float(np.finfo(dtype).eps)
  if not math.isfinite(est):
    return f'the held-out {eval_bound} estimate is {est}'
  if not math.isfinite(peak):
    return f'the held-out scores are not finite (max |f| = {peak})'
  if peak * eps > SCORE_RESOLUTION:
    return (f'the held-out scores reach |f| = {peak:.3g}, where {np.dtype(dtype).name} '
            f'rounds them in steps of {peak * eps:.3g} nats (> SCORE_RESOLUTION = '
            f'{SCORE_RESOLUTION}), so the estimate {est:.6g} is rounding noise'
            + (' (the + log K term and the differences f_ii - f_ij are lost)'
               if eval_bound == 'infonce' else ''))
  if not est <= top + CEILING_TOLERANCE + peak * eps:
    return (f'the held-out {eval_bound} estimate {est:.6g} exceeds its ceiling '
            f'log K = log {k} = {top:.6g} nats')
  return ''


@functools.partial(jax.jit, static_argnames=('spec', 'mesh'))
def _fit(key: Array, x_train: Array, y_train: Array, x_test: Array,
         y_test: Array, spec: _Spec, mesh):
  """Trains with early stopping; returns best params and the curves.

  Every batch is sharded over ``mesh`` (the data stays replicated).
  """
  model = _Model(spec.critic, spec.critic_kwargs, spec.baseline_hidden)
  bound = bounds.get(spec.bound)
  kw = dict(spec.bound_kwargs)
  k, n_train = spec.batch_size, x_train.shape[0]
  steps_per_epoch = n_train // k
  key_init, key_perm = jax.random.split(key)
  params = model.init(key_init, x_train[:k], y_train[:k])
  tx = optax.adam(spec.learning_rate)
  opt_state = tx.init(params)
  bound_state = bound.init_state()

  # Held-out batches: (B, K, d).
  nb, ke = spec.num_eval_batches, spec.eval_batch
  xt = x_test[:nb * ke].reshape(nb, ke, -1)
  yt = y_test[:nb * ke].reshape(nb, ke, -1)

  def held_out(p):
    def one(batch):
      scores, a = model.apply(p, *parallel.shard_batch(batch, mesh))
      peak = jnp.max(jnp.abs(scores))
      if a is not None:
        peak = jnp.maximum(peak, jnp.max(jnp.abs(a)))
      return _held_out_estimate(spec, scores, a), peak
    values, peaks = jax.lax.map(one, (xt, yt))
    mean = jnp.mean(values)
    se = jnp.std(values, ddof=1) / jnp.sqrt(nb) if nb > 1 else jnp.nan
    return mean, se, jnp.max(peaks)

  def objective(p, xb, yb, ms):
    scores, a = model.apply(p, xb, yb)
    out = bound(scores, log_baseline=a, state=ms, **kw)
    return -out.objective, (out.objective, out.state)

  grad_fn = jax.value_and_grad(objective, has_aux=True)

  def train_step(carry, t):
    p, o, ms, perm = carry
    pos = t % steps_per_epoch
    perm = jax.lax.cond(
        pos == 0,
        lambda: jax.random.permutation(
            jax.random.fold_in(key_perm, t // steps_per_epoch), n_train),
        lambda: perm)
    idx = jax.lax.dynamic_slice(perm, (pos * k,), (k,))
    xb, yb = parallel.shard_batch((x_train[idx], y_train[idx]), mesh)
    (_, (value, ms)), grads = grad_fn(p, xb, yb, ms)
    updates, o = tx.update(grads, o, p)
    return (optax.apply_updates(p, updates), o, ms, perm), value

  n_steps = spec.chunk * spec.num_chunks
  init = dict(
      chunk=jnp.zeros((), jnp.int32), params=params, opt=opt_state,
      state=bound_state, perm=jnp.arange(n_train),
      best_params=params, best=jnp.full((), -jnp.inf), best_se=jnp.full((), jnp.nan),
      best_chunk=jnp.zeros((), jnp.int32), bad=jnp.zeros((), jnp.int32),
      train_curve=jnp.full((n_steps,), jnp.nan),
      test_curve=jnp.full((spec.num_chunks,), jnp.nan),
      score_curve=jnp.full((spec.num_chunks,), jnp.nan))
  top = ceiling(spec.eval_bound, ke)

  def cond(s):
    return (s['chunk'] < spec.num_chunks) & (s['bad'] < spec.patience)

  def body(s):
    c = s['chunk']
    steps = c * spec.chunk + jnp.arange(spec.chunk)
    (p, o, ms, perm), values = jax.lax.scan(
        train_step, (s['params'], s['opt'], s['state'], s['perm']), steps)
    est, se, peak = held_out(p)
    better = _usable(est, peak, top, jnp.finfo(peak.dtype).eps) & (est > s['best'])
    pick = lambda new, old: jax.tree.map(  # pylint: disable=g-long-lambda
        lambda a, b: jnp.where(better, a, b), new, old)
    return dict(
        chunk=c + 1, params=p, opt=o, state=ms, perm=perm,
        best_params=pick(p, s['best_params']),
        best=jnp.where(better, est, s['best']),
        best_se=jnp.where(better, se, s['best_se']),
        best_chunk=jnp.where(better, c, s['best_chunk']),
        bad=jnp.where(better, 0, s['bad'] + 1),
        train_curve=jax.lax.dynamic_update_slice(
            s['train_curve'], values, (c * spec.chunk,)),
        test_curve=s['test_curve'].at[c].set(est),
        score_curve=s['score_curve'].at[c].set(peak))

  out = jax.lax.while_loop(cond, body, init)
  return dict(params=out['best_params'], mi=out['best'], stderr=out['best_se'],
              best_chunk=out['best_chunk'], chunks=out['chunk'],
              train_curve=out['train_curve'], test_curve=out['test_curve'],
              score_curve=out['score_curve'])


# ---------------------------------------------------------------- public API --

def estimate_mi(x: Any, y: Any, *, bound: str = 'infonce',
                critic: str = 'concat',
                critic_kwargs: Mapping[str, Any] | None = None,
                bound_kwargs: Mapping[str, Any] | None = None,
                eval_bound: str | None = None,
                batch_size: int = 256, steps: int = 2000,
                learning_rate: float = 3e-3, eval_every: int = 100,
                patience: int = 5, test_fraction: float = 0.5,
                standardize: str = 'rank', seed: int = 0,
                mesh=None, on_failure: str = 'raise') -> MIEstimate:
  """Estimates I(X; Y) in nats by training a critic on a variational bound.

  Args:
    x: (n,) or (n, d_x) samples of X.
    y: (n,) or (n, d_y) samples of Y; row i of x and y form the i-th pair.
    bound: training bound, a name of ``infomax_jax.bounds.REGISTRY``: dv, nwj,
      infonce, jsd, tuba, interpolated, smile, mine, f_kl, f_gan, ...
    critic: one of ``infomax_jax.critics.CRITICS``: separable, concat,
      bilinear, inner_product.
    critic_kwargs: the critic module's fields; default ``CRITIC_DEFAULTS``.
    bound_kwargs: the bound's hyperparameters (defaults: the registry's
      ``Bound.defaults``): ``clip`` (smile), ``alpha`` (interpolated),
      ``momentum`` (mine); and ``baseline_hidden`` (default
      ``BASELINE_HIDDEN``) for bounds with a learned baseline (tuba,
      interpolated).
    eval_bound: the registry entry whose reported estimate is the held-out
      MI; default ``bound`` itself (``Bound.reports`` says what that is).
      One with a baseline input only when ``bound`` learns a baseline.
    batch_size: K, the number of pairs per training batch (K positives, K(K-1)
      negatives) and per held-out batch; reduced to the split size if larger.
      InfoNCE estimates never exceed log K.
    steps: maximum number of training steps (rounded up to a multiple of
      ``eval_every``).
    learning_rate: Adam's learning rate.
    eval_every: training steps between held-out evaluations (one jitted
      ``lax.scan`` chunk).
    patience: stop after this many evaluations without a new best.
    test_fraction: fraction of the samples held out for the estimate.
    standardize: per-coordinate monotone map fitted on the training split
      (MI is invariant to such maps): 'rank' (standard normal margins from
      the empirical CDF; robust to heavy tails and to marginal distortions),
      'zscore' (computed in float64, overflow-free at any scale) or 'none'
      (the samples as they are, in float32).
    seed: seed of the split, the initialisation and the batches.
    mesh: the ``'data'`` device mesh whose devices share every batch
      (default: all devices, ``parallel.make_mesh()``); the result does not
      depend on it beyond floating-point rounding.
    on_failure: what a failed fit does (module docstring, "Failures": no
      usable held-out evaluation, training diverged before the reported
      evaluation, or a best estimate below ``FLOOR``): 'raise' (default) an
      ``EstimationError``; 'nan': warn and return an ``MIEstimate`` with
      ``mi`` = ``stderr`` = nan, ``failed=True`` and the ``reason``.

  Returns:
    An ``MIEstimate``: ``mi`` and ``stderr`` (held-out, nats), the curves and
    the best parameters; ``failed`` is False unless ``on_failure='nan'`` and
    the fit failed.

  Raises:
    TypeError: non-numeric samples or a non-str name.
    ValueError: mismatched sample counts, non-finite samples (naming the
      first), samples beyond float32's range with ``standardize='none'``, too
      few samples, bad shapes, an unknown bound / critic / eval_bound /
      standardize / on_failure (the message lists the valid names) or a bad
      hyperparameter.
    EstimationError: the fit failed (with ``on_failure='raise'``): training
      diverged, the scores outgrew float32's resolution, or the estimate is
      absurd (beyond the bound's ceiling, or below ``FLOOR``). Also a
      ``FloatingPointError``.

  Warns:
    CeilingWarning: the estimate is within ``NEAR_CEILING`` of its bound's
      ceiling (InfoNCE: log K); the true MI may be much larger.
    RuntimeWarning: training diverged after the reported evaluation, or some
      evaluations were unusable; or (``on_failure='nan'``) the fit failed.
  """
  t0 = time.perf_counter()
  train_spec = bounds.get(bound)
  registry.lookup(critics.CRITICS, critic, 'critic')
  eval_bound = bound if eval_bound is None else eval_bound
  eval_spec = registry.lookup(
      {n: b for n, b in bounds.REGISTRY.items() if b.mi_estimate}, eval_bound,
      'eval_bound')
  if eval_spec.needs_baseline and not train_spec.needs_baseline:
    raise ValueError(f'eval_bound={eval_bound!r} needs a learned baseline, '
                     f'which bound={bound!r} does not train (those that do: '
                     f'{", ".join(n for n, b in bounds.REGISTRY.items() if b.needs_baseline)})')
  kw, baseline_hidden = _bound_kwargs(train_spec, bound_kwargs)
  eval_kw = kw if eval_bound == bound else eval_spec.defaults
  ck = CRITIC_DEFAULTS[critic] if critic_kwargs is None else dict(critic_kwargs)

  batch_size = _check_positive_int(batch_size, 'batch_size')
  steps = _check_positive_int(steps, 'steps')
  eval_every = _check_positive_int(eval_every, 'eval_every')
  patience = _check_positive_int(patience, 'patience')
  if not (isinstance(learning_rate, (int, float)) and learning_rate > 0
          and math.isfinite(learning_rate)):
    raise ValueError(f'learning_rate must be a finite number > 0, got '
                     f'{learning_rate!r}')
  registry.lookup({s: s for s in STANDARDIZATIONS}, standardize, 'standardize')
  registry.lookup({s: s for s in ON_FAILURE}, on_failure, 'on_failure')
  if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
    raise ValueError(f'test_fraction must lie in (0, 1), got {test_fraction!r}')

  x = _as_samples(x, 'x')
  y = _as_samples(y, 'y')
  if standardize == 'none':
    for arr, name in ((x, 'x'), (y, 'y')):
      _check_float32_range(arr, name, "standardize='none' gives the samples to "
                           "the critic unchanged, in float32; use standardize="
                           "'rank' or 'zscore'")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f'x and y must hold the same number of samples (rows), '
                     f'got x: {x.shape} and y: {y.shape}')
  n = x.shape[0]
  n_test = int(round(test_fraction * n))
  n_train = n - n_test
  if min(n_train, n_test) < _MIN_SPLIT:
    raise ValueError(
        f'too few samples: got n = {n}, split into {n_train} train / {n_test} '
        f'test (test_fraction={test_fraction}); estimate_mi needs at least '
        f'{_MIN_SPLIT} samples in each split')

  key = jax.random.key(seed)
  key_split, key_fit = jax.random.split(key)
  order = np.asarray(jax.random.permutation(key_split, n))
  x, y = x[order], y[order]
  x_train, x_test = x[:n_train], x[n_train:]
  y_train, y_test = y[:n_train], y[n_train:]
  x_train, x_test = _standardize(x_train, x_test, standardize)
  y_train, y_test = _standardize(y_train, y_test, standardize)
  for arr, name, rows in ((x_test, 'x', order[n_train:]),
                          (y_test, 'y', order[n_train:])):
    _check_float32_range(arr, name, f'standardize={standardize!r} (fitted on '
                         'the training split) maps a test sample beyond '
                         "float32's range; use standardize='rank'", rows)
  input_peak = float(max(np.max(np.abs(a)) for a in
                         (x_train, x_test, y_train, y_test)))
  x_train, x_test, y_train, y_test = (
      a.astype(np.float32) for a in (x_train, x_test, y_train, y_test))

  k = min(batch_size, n_train)
  ke = min(batch_size, n_test)
  chunk = min(eval_every, steps)
  spec = _Spec(
      bound=bound, eval_bound=eval_bound, critic=critic,
      critic_kwargs=_freeze(ck), bound_kwargs=_freeze(kw),
      eval_kwargs=_freeze(eval_kw), baseline_hidden=baseline_hidden, batch_size=k,
      eval_batch=ke, num_eval_batches=n_test // ke, chunk=chunk,
      num_chunks=-(-steps // chunk), patience=patience,
      learning_rate=float(learning_rate))
  mesh = mesh or parallel.make_mesh()
  arrays = jax.device_put((x_train, y_train, x_test, y_test),
                          parallel.replicated(mesh))
  out = jax.device_get(_fit(key_fit, *arrays, spec, mesh))
  chunks = int(out['chunks'])
  steps_run = chunks * chunk
  result = MIEstimate(
      mi=float(out['mi']), stderr=float(out['stderr']), bound=bound,
      eval_bound=eval_bound, critic=critic,
      train_curve=np.asarray(out['train_curve'][:steps_run]),
      eval_steps=chunk * np.arange(1, chunks + 1),
      test_curve=np.asarray(out['test_curve'][:chunks]),
      best_step=chunk * (int(out['best_chunk']) + 1), steps_run=steps_run,
      stopped_early=chunks < spec.num_chunks, n_train=n_train, n_test=n_test,
      batch_size=k, seconds=time.perf_counter() - t0, params=out['params'],
      score_curve=np.asarray(out['score_curve'][:chunks]))
  if standardize != 'rank' and input_peak > _LARGE_INPUT:
    hint = (f"The critic's inputs reach |v| = {input_peak:.3g} with standardize="
            f"{standardize!r}: use standardize='rank'.")
  else:
    hint = (f'Try a smaller learning_rate (now {learning_rate:g}) or another '
            f'bound.')
  reason, warns = _diagnose(result, ke, hint)
  if not reason:
    for message, category in warns:
      warnings.warn(message, category, stacklevel=2)
    return result
  finite = result.test_curve[~np.isnan(result.test_curve)]
  value = float(finite.max()) if finite.size else math.nan
  failed = result._replace(mi=math.nan, stderr=math.nan, failed=True,
                           reason=reason)
  if on_failure == 'raise':
    raise EstimationError(reason, bound=bound, eval_bound=eval_bound,
                          value=value, result=failed)
  warnings.warn(f'estimate_mi failed (bound={bound!r}, eval_bound='
                f'{eval_bound!r}, unguarded estimate {value:.6g} nats): '
                f"{reason}; returning nan (on_failure='nan')", RuntimeWarning,
                stacklevel=2)
  return failed


def _diagnose(r: MIEstimate, k: int, hint: str
              ) -> tuple[str, list[tuple[str, type[Warning]]]]:
  """(why the fit failed or '', the warnings to issue if it did not).

  Args:
    r: the unguarded result (``mi`` = -inf when no evaluation was usable).
    k: the held-out batch size K.
    hint: what to try, appended to a failure's reason.
  """
  top = ceiling(r.eval_bound, k)
  problems = [_problem(float(e), float(p), top, r.score_curve.dtype,
                       r.eval_bound, k)
              for e, p in zip(r.test_curve, r.score_curve)]
  unusable = [i for i, p in enumerate(problems) if p]
  bad = np.flatnonzero(~np.isfinite(r.train_curve))
  diverged = ''
  if bad.size:
    diverged = (f'the training bound {r.bound} became {r.train_curve[bad[0]]} at '
                f'step {int(bad[0]) + 1}')
  n = len(problems)
  if not math.isfinite(r.mi):
    first, last = unusable[0], unusable[-1]
    reason = (f'none of the {n} held-out evaluations was usable; after '
              f'{r.eval_steps[first]} steps {problems[first]}')
    if last != first and problems[last] != problems[first]:
      reason += f'; after {r.eval_steps[last]} steps {problems[last]}'
    if diverged:
      reason += f'; {diverged}'
    return f'{reason}. {hint}', []
  if bad.size and bad[0] < r.best_step:
    return (f'training diverged before the reported evaluation (after '
            f'{r.best_step} steps): {diverged}. {hint}'), []
  if r.mi < FLOOR:
    return (f'the best held-out estimate {r.mi:.6g} nats is below FLOOR = '
            f'{FLOOR} nat, while a constant critic scores 0: training diverged '
            f'or failed. {hint}'), []
  warns = []
  if math.isfinite(top) and r.mi >= (1.0 - NEAR_CEILING) * top:
    warns.append((
        f'the {r.eval_bound} estimate {r.mi:.4f} nats (bound={r.bound!r}) is '
        f'within {NEAR_CEILING:.0%} of its ceiling log K = log {k} = {top:.4f} '
        f'nats: the true MI may be much larger; use a larger batch_size (K = '
        f'{k}) or a bound without this ceiling (nwj, dv, smile, mine)',
        CeilingWarning))
  if unusable or diverged:
    parts = []
    if unusable:
      i = unusable[0]
      parts.append(f'{len(unusable)} of {n} held-out evaluations were unusable '
                   f'(after {r.eval_steps[i]} steps {problems[i]})')
    if diverged:
      parts.append(diverged)
    warns.append((f'{"; ".join(parts)}; the estimate is the best usable '
                  f'evaluation, after {r.best_step} steps. {hint}',
                  RuntimeWarning))
  return '', warns
