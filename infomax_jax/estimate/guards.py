"""What ``estimate_mi`` returns and how it decides that a fit failed.

``MIEstimate`` (the result), ``EstimationError`` / ``CeilingWarning``, the
ceiling of each bound, and the checks of the package docstring's "Failures":
``_usable`` (on device, per evaluation), ``_problem`` (the same in words) and
``_diagnose`` (the whole fit).
"""

import functools
import math
from typing import Any, NamedTuple

import jax
import numpy as np

Array = jax.Array

# Guards (see the module docstring, "Failures").
SCORE_RESOLUTION = 0.05   # nats: largest rounding step eps * max|f| of a usable evaluation
CEILING_TOLERANCE = 1e-3  # nats an estimate may exceed its bound's ceiling (+ eps * max|f|)
FLOOR = -1.0              # nats: a best estimate below this is a failed fit
NEAR_CEILING = 0.05       # warn when an estimate is within this fraction of its ceiling
NEAR_CEILING_NATS = 1.5   # ... or within this many nats (InfoNCE's K-bias grows there)
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
    interval: (lo, hi), the ``confidence`` interval mi +- z stderr (normal
      quantile z). It covers the held-out sampling error and the spread of the
      ensemble's critics, not the bound's bias: a lower bound whose critic
      is imperfect sits below the truth by more than its interval where the
      MI is high or the dependence hard to learn (README, issue 19 notes).
    confidence: the interval's nominal coverage.
    member_estimates: (E,) each ensemble critic's own held-out estimate.
    eval_pairs: K of the reported estimate (InfoNCE's ceiling is log K):
      n_test for the all-pairs estimate, else the held-out batch size.
    estimator: the estimate's bound and evaluation, in words.
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
  interval: tuple[float, float] = (math.nan, math.nan)
  confidence: float = 0.95
  member_estimates: np.ndarray | None = None
  eval_pairs: int = 0
  estimator: str = ''


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


def _diagnose(r: MIEstimate, k: int, hint: str, k_reported: int | None = None
              ) -> tuple[str, list[tuple[str, type[Warning]]]]:
  """(why the fit failed or '', the warnings to issue if it did not).

  Args:
    r: the unguarded result (``mi`` = -inf when no evaluation was usable).
    k: the held-out batch size K.
    hint: what to try, appended to a failure's reason.
    k_reported: K of the reported estimate (default k): the all-pairs
      estimate's n_test.
  """
  top = ceiling(r.eval_bound, k)
  k_reported = k if k_reported is None else k_reported
  top_reported = ceiling(r.eval_bound, k_reported)
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
  if math.isfinite(top_reported) and (
      r.mi >= (1.0 - NEAR_CEILING) * top_reported
      or r.mi >= top_reported - NEAR_CEILING_NATS):
    warns.append((
        f'the {r.eval_bound} estimate {r.mi:.4f} nats (bound={r.bound!r}) is '
        f'near its ceiling log K = log {k_reported} = {top_reported:.4f} nats '
        f'(within {NEAR_CEILING:.0%} or {NEAR_CEILING_NATS} nats), where '
        f'InfoNCE underestimates: the true MI may be much larger; use more '
        f'samples (K = {k_reported}) or a bound without this ceiling (nwj, '
        f'dv, smile, mine)', CeilingWarning))
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
