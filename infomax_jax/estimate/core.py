"""``estimate_mi``: the critic, its jitted fit and the public entry point."""

import dataclasses
import functools
import math
import time
from typing import Any, Mapping
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
from infomax_jax.estimate.guards import _LARGE_INPUT
from infomax_jax.estimate.guards import ON_FAILURE
from infomax_jax.estimate.guards import EstimationError
from infomax_jax.estimate.guards import MIEstimate
from infomax_jax.estimate.guards import _diagnose
from infomax_jax.estimate.guards import _problem
from infomax_jax.estimate.guards import _usable
from infomax_jax.estimate.guards import ceiling
from infomax_jax.estimate.inputs import STANDARDIZATIONS
from infomax_jax.estimate.inputs import _as_samples
from infomax_jax.estimate.inputs import _check_float32_range
from infomax_jax.estimate.inputs import _check_not_constant
from infomax_jax.estimate.inputs import _check_positive_int
from infomax_jax.estimate.inputs import _freeze
from infomax_jax.estimate.inputs import _standardize

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
_FULL_BLOCK = 128  # rows / columns per block of the all-pairs held-out InfoNCE
_STOP_K = 512      # with all_pairs: pairs per held-out batch of the early stopping
_STOP_BATCHES = 4  #   and at most this many such batches per evaluation

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


# ------------------------------------------------------------------ training --

LR_SCHEDULES = ('cosine', 'constant')
_COSINE_FLOOR = 0.05   # cosine: the learning rate decays to this share of its peak


def _optimizer(spec: '_Spec') -> optax.GradientTransformation:
  """Adam at ``spec.learning_rate``, constant or cosine-decayed over the step cap.

  The schedule's step count lives in the optimiser state, so it advances
  inside the jitted loop; early stopping simply ends it sooner.
  """
  if spec.lr_schedule == 'cosine':
    return optax.adam(optax.cosine_decay_schedule(
        spec.learning_rate, spec.chunk * spec.num_chunks, alpha=_COSINE_FLOOR))
  return optax.adam(spec.learning_rate)


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
  ensemble: int = 1
  full_block: int = 0       # > 0: final InfoNCE over all test pairs, rows in blocks
  lr_schedule: str = 'constant'   # or 'cosine': decays over chunk * num_chunks


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


def _member_keys(key: Array, ensemble: int) -> Array:
  """(E,) keys of the ensemble's critics; E = 1 keeps the single fit's key."""
  return key[None] if ensemble == 1 else jax.random.split(key, ensemble)


@functools.partial(jax.jit, static_argnames=('spec', 'mesh'))
def _fit(key: Array, x_train: Array, y_train: Array, x_test: Array,
         y_test: Array, spec: _Spec, mesh):
  """Trains ``spec.ensemble`` critics in one program; returns their best params,
  the curves and (``spec.full_block`` > 0) the all-pairs held-out InfoNCE.

  The E critics (own initialisation and batch order each) are one vmapped
  while-loop that runs until every critic has exhausted its patience. Every
  batch is sharded over ``mesh`` (the data stays replicated).
  """
  keys = _member_keys(key, spec.ensemble)
  model = _Model(spec.critic, spec.critic_kwargs, spec.baseline_hidden)
  init = jax.vmap(lambda k: _init_state(k, x_train, y_train, spec, model))(keys)
  step = jax.vmap(lambda k, s: _chunk(k, s, x_train, y_train, x_test, y_test,
                                      spec, model, mesh))

  def cond(s):
    return ((s['chunk'][0] < spec.num_chunks)
            & jnp.any(s['bad'] < spec.patience))

  out = jax.lax.while_loop(cond, lambda s: step(keys, s), init)
  result = dict(params=out['best_params'], mi=out['best'], stderr=out['best_se'],
                best_chunk=out['best_chunk'], chunks=out['chunk'],
                train_curve=out['train_curve'], test_curve=out['test_curve'],
                score_curve=out['score_curve'])
  if spec.full_block:
    usable = jnp.isfinite(out['best'])
    result.update(_all_pairs_infonce(out['best_params'], usable, x_test, y_test,
                                     spec, model))
  return result


def _all_pairs_infonce(params, usable: Array, x_test: Array, y_test: Array,
                       spec: _Spec, model: nn.Module) -> dict[str, Array]:
  """InfoNCE with K = n_test: every held-out x against every held-out y.

  The critic is the mean of the usable members' scores (InfoNCE is concave in
  the scores, so the mean critic scores at least the members' mean). Rows and
  columns are processed in blocks of ``spec.full_block`` (padded and masked),
  so memory is O(E block^2 hidden), not O(n_test^2).

  Returns:
    terms: (n_test,) per-row terms log K + f_ii - logsumexp_j f_ij of the mean
      critic (their mean is the estimate);
    member_estimates: (E,) each member's own all-pairs estimate;
    full_peak: max |f| over every usable member's scores.
  """
  n, b = x_test.shape[0], spec.full_block
  nb = -(-n // b)
  pad = nb * b - n
  xp = jnp.pad(x_test, ((0, pad), (0, 0))).reshape(nb, b, -1)
  yp = jnp.pad(y_test, ((0, pad), (0, 0))).reshape(nb, b, -1)
  col_ok = (jnp.arange(nb * b) < n).reshape(nb, b)
  w = usable.astype(x_test.dtype) / jnp.maximum(jnp.sum(usable), 1)

  def row_block(args):
    r, xb = args

    def member(p):                      # (nb, b, b) scores of one critic
      return jax.vmap(lambda yc: model.apply(p, xb, yc)[0])(yp)

    s = jax.vmap(member)(params)        # (E, nb, b, b): [e, col block, row, col]
    s = jnp.moveaxis(s, 2, 1).reshape(s.shape[0], b, nb * b)   # (E, b, n_pad)
    s = jnp.where(usable[:, None, None], s, 0.0)
    peak = jnp.max(jnp.where(col_ok.reshape(-1), jnp.abs(s), 0.0))
    mean = jnp.tensordot(w, s, axes=1)  # (b, n_pad)
    both = jnp.concatenate([mean[None], s], axis=0)            # (E + 1, b, n_pad)
    masked = jnp.where(col_ok.reshape(-1), both, -jnp.inf)
    lse = jax.nn.logsumexp(masked, axis=-1)                    # (E + 1, b)
    diag = both[:, jnp.arange(b), r * b + jnp.arange(b)]       # (E + 1, b)
    return diag - lse, peak

  terms, peaks = jax.lax.map(row_block, (jnp.arange(nb), xp))  # (nb, E + 1, b)
  terms = jnp.moveaxis(terms, 1, 0).reshape(terms.shape[1], nb * b)[:, :n]
  terms = terms + jnp.log(n)
  return dict(terms=terms[0], member_estimates=jnp.mean(terms[1:], axis=1),
              full_peak=jnp.max(peaks))


def _init_state(key: Array, x_train: Array, y_train: Array, spec: _Spec,
                model: nn.Module) -> dict[str, Any]:
  """One critic's initial training state (params, optimiser, curves, best)."""
  bound = bounds.get(spec.bound)
  k = spec.batch_size
  key_init, _ = jax.random.split(key)
  params = model.init(key_init, x_train[:k], y_train[:k])
  n_steps = spec.chunk * spec.num_chunks
  return dict(
      chunk=jnp.zeros((), jnp.int32), params=params,
      opt=_optimizer(spec).init(params),
      state=bound.init_state(), perm=jnp.arange(x_train.shape[0]),
      best_params=params, best=jnp.full((), -jnp.inf), best_se=jnp.full((), jnp.nan),
      best_chunk=jnp.zeros((), jnp.int32), bad=jnp.zeros((), jnp.int32),
      train_curve=jnp.full((n_steps,), jnp.nan),
      test_curve=jnp.full((spec.num_chunks,), jnp.nan),
      score_curve=jnp.full((spec.num_chunks,), jnp.nan))


def _chunk(key: Array, s: dict[str, Any], x_train: Array, y_train: Array,
           x_test: Array, y_test: Array, spec: _Spec, model: nn.Module,
           mesh) -> dict[str, Any]:
  """``spec.chunk`` training steps of one critic, then a held-out evaluation."""
  bound = bounds.get(spec.bound)
  kw = dict(spec.bound_kwargs)
  k, n_train = spec.batch_size, x_train.shape[0]
  steps_per_epoch = n_train // k
  _, key_perm = jax.random.split(key)
  tx = _optimizer(spec)

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

  top = ceiling(spec.eval_bound, ke)

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

  return body(s)


# ---------------------------------------------------------------- public API --

def estimate_mi(x: Any, y: Any, *, bound: str = 'infonce',
                critic: str = 'concat',
                critic_kwargs: Mapping[str, Any] | None = None,
                bound_kwargs: Mapping[str, Any] | None = None,
                eval_bound: str | None = None,
                batch_size: int = 128, steps: int = 600,
                learning_rate: float = 2e-2, eval_every: int = 100,
                patience: int = 3, test_fraction: float = 0.5,
                standardize: str = 'rank', seed: int = 0,
                ensemble: int = 2, all_pairs: bool | None = None,
                lr_schedule: str = 'cosine',
                confidence: float = 0.95,
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
      negatives) and, without ``all_pairs``, per held-out batch; reduced to
      the split size if larger. InfoNCE estimates never exceed log K. With
      ``all_pairs`` the early stopping evaluates up to 4 held-out batches of
      max(512, K) pairs and the reported estimate uses all n_test pairs.
    steps: maximum number of training steps (rounded up to a multiple of
      ``eval_every``).
    learning_rate: Adam's (peak) learning rate.
    lr_schedule: 'cosine' (decay from ``learning_rate`` to 5 % of it over
      ``steps``, whether or not the fit stops early) or 'constant'.
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
    ensemble: E, the number of critics trained together (one vmapped
      program; own initialisation and batch order each). The estimate uses
      their mean scores (all-pairs) or their mean estimate, and the interval
      includes their spread.
    all_pairs: report InfoNCE with K = n_test (every held-out x against every
      held-out y; ceiling log n_test) instead of the mean over batches of
      ``batch_size``; default: True when ``eval_bound`` is 'infonce'.
    confidence: nominal coverage of ``MIEstimate.interval`` (mi +- z stderr).
    mesh: the ``'data'`` device mesh whose devices share every batch
      (default: all devices, ``parallel.make_mesh()``); the result does not
      depend on it beyond floating-point rounding.
    on_failure: what a failed fit does (module docstring, "Failures": no
      usable held-out evaluation, training diverged before the reported
      evaluation, or a best estimate below ``FLOOR``): 'raise' (default) an
      ``EstimationError``; 'nan': warn and return an ``MIEstimate`` with
      ``mi`` = ``stderr`` = nan, ``failed=True`` and the ``reason``.

  Returns:
    An ``MIEstimate``: ``mi``, ``stderr`` and ``interval`` (held-out, nats),
    ``estimator`` (the bound, K and ensemble that produced it), each critic's
    estimate, the curves (means over the critics) and the best parameters
    (stacked over the critics); ``failed`` is False unless
    ``on_failure='nan'`` and the fit failed.

  Raises:
    TypeError: non-numeric samples or a non-str name.
    ValueError: mismatched sample counts, non-finite samples (naming the
      first), a constant column (naming it), samples beyond float32's range
      with ``standardize='none'``, too few samples, bad shapes, an unknown
      bound / critic / eval_bound / standardize / on_failure (the message
      lists the valid names) or a bad hyperparameter.
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
  ensemble = _check_positive_int(ensemble, 'ensemble')
  if not (isinstance(confidence, float) and 0 < confidence < 1):
    raise ValueError(f'confidence must be a float in (0, 1), got {confidence!r}')
  if not (isinstance(learning_rate, (int, float)) and learning_rate > 0
          and math.isfinite(learning_rate)):
    raise ValueError(f'learning_rate must be a finite number > 0, got '
                     f'{learning_rate!r}')
  registry.lookup({s: s for s in STANDARDIZATIONS}, standardize, 'standardize')
  registry.lookup({s: s for s in LR_SCHEDULES}, lr_schedule, 'lr_schedule')
  registry.lookup({s: s for s in ON_FAILURE}, on_failure, 'on_failure')
  if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
    raise ValueError(f'test_fraction must lie in (0, 1), got {test_fraction!r}')

  x_in, y_in = x, y
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
  for arr, name, raw in ((x, 'x', x_in), (y, 'y', y_in)):
    _check_not_constant(arr, name, np.ndim(raw) == 1)

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
  chunk = min(eval_every, steps)
  all_pairs = eval_bound == 'infonce' if all_pairs is None else bool(all_pairs)
  if all_pairs:
    # Early stopping on up to _STOP_BATCHES held-out batches of _STOP_K pairs
    # (a higher ceiling than the training batch's, at a bounded cost).
    ke = min(max(_STOP_K, batch_size), n_test)
    num_eval = min(n_test // ke, _STOP_BATCHES)
  else:
    ke = min(batch_size, n_test)
    num_eval = n_test // ke
  if all_pairs and eval_bound != 'infonce':
    raise ValueError(f"all_pairs=True needs eval_bound='infonce' (the all-pairs "
                     f'estimate is InfoNCE with K = n_test), got eval_bound='
                     f'{eval_bound!r}')
  spec = _Spec(
      bound=bound, eval_bound=eval_bound, critic=critic,
      critic_kwargs=_freeze(ck), bound_kwargs=_freeze(kw),
      eval_kwargs=_freeze(eval_kw), baseline_hidden=baseline_hidden, batch_size=k,
      eval_batch=ke, num_eval_batches=num_eval, chunk=chunk,
      num_chunks=-(-steps // chunk), patience=patience,
      learning_rate=float(learning_rate), ensemble=ensemble,
      full_block=min(_FULL_BLOCK, n_test) if all_pairs else 0,
      lr_schedule=lr_schedule)
  mesh = mesh or parallel.make_mesh()
  arrays = jax.device_put((x_train, y_train, x_test, y_test),
                          parallel.replicated(mesh))
  out = jax.device_get(_fit(key_fit, *arrays, spec, mesh))
  chunks = int(out['chunks'][0])
  steps_run = chunks * chunk
  best = np.asarray(out['mi'], np.float64)                # (E,) batch estimates
  usable = np.isfinite(best)
  z = float(special.ndtri(0.5 + confidence / 2))
  if all_pairs:
    terms = np.asarray(out['terms'], np.float64)
    members = np.asarray(out['member_estimates'], np.float64)
    mi = float(terms.mean()) if usable.any() else -math.inf
    se_rows = float(terms.std(ddof=1) / math.sqrt(terms.size))
    se_members = (float(members[usable].std(ddof=1) / math.sqrt(usable.sum()))
                  if usable.sum() > 1 else 0.0)
    k_reported = n_test
  else:
    members = best
    mi = float(best[usable].mean()) if usable.any() else -math.inf
    se_rows = float(np.nanmean(np.asarray(out['stderr'])[usable])) if usable.any() \
        else math.nan
    se_members = (float(best[usable].std(ddof=1) / math.sqrt(usable.sum()))
                  if usable.sum() > 1 else 0.0)
    k_reported = ke
  stderr = math.sqrt(se_rows ** 2 + se_members ** 2)
  best_chunk = int(np.max(np.asarray(out['best_chunk'])[usable])) if usable.any() else 0
  train_curve = np.asarray(out['train_curve'][:, :steps_run]).mean(0)
  test_curve = np.asarray(out['test_curve'][:, :chunks]).mean(0)
  result = MIEstimate(
      mi=mi, stderr=stderr, bound=bound,
      eval_bound=eval_bound, critic=critic,
      train_curve=train_curve,
      eval_steps=chunk * np.arange(1, chunks + 1),
      test_curve=test_curve,
      best_step=chunk * (best_chunk + 1), steps_run=steps_run,
      stopped_early=chunks < spec.num_chunks, n_train=n_train, n_test=n_test,
      batch_size=k, seconds=time.perf_counter() - t0, params=out['params'],
      score_curve=np.asarray(out['score_curve'][:, :chunks]).max(0),
      interval=(mi - z * stderr, mi + z * stderr), confidence=confidence,
      member_estimates=members, eval_pairs=k_reported,
      estimator=(f'{eval_bound} over all {n_test} x {n_test} held-out pairs '
                 f'(ceiling log {n_test} = {math.log(n_test):.2f} nats)'
                 if all_pairs else
                 f'{eval_bound} on {n_test // ke} held-out batches of {ke} pairs'
                 + (f' (ceiling log {ke} = {math.log(ke):.2f} nats)'
                    if eval_bound == 'infonce' else ''))
      + (f', mean critic of an ensemble of {ensemble}' if ensemble > 1 else ''))
  if standardize != 'rank' and input_peak > _LARGE_INPUT:
    hint = (f"The critic's inputs reach |v| = {input_peak:.3g} with standardize="
            f"{standardize!r}: use standardize='rank'.")
  else:
    hint = (f'Try a smaller learning_rate (now {learning_rate:g}) or another '
            f'bound.')
  if all_pairs and usable.any():
    problem = _problem(mi, float(out['full_peak']), math.log(n_test),
                       np.float32, eval_bound, n_test)
    if problem:
      result = result._replace(mi=-math.inf)     # fails below, naming why
      hint = f'the all-pairs estimate is unusable: {problem}. {hint}'
  reason, warns = _diagnose(result, ke, hint, k_reported)
  if not reason:
    for message, category in warns:
      warnings.warn(message, category, stacklevel=2)
    return result
  every = np.asarray(out['test_curve'][:, :chunks])      # every critic's curve
  finite = every[np.isfinite(every)]
  value = float(finite.max()) if finite.size else math.nan
  failed = result._replace(mi=math.nan, stderr=math.nan,
                           interval=(math.nan, math.nan), failed=True,
                           reason=reason)
  if on_failure == 'raise':
    raise EstimationError(reason, bound=bound, eval_bound=eval_bound,
                          value=value, result=failed)
  warnings.warn(f'estimate_mi failed (bound={bound!r}, eval_bound='
                f'{eval_bound!r}, unguarded estimate {value:.6g} nats): '
                f"{reason}; returning nan (on_failure='nan')", RuntimeWarning,
                stacklevel=2)
  return failed


