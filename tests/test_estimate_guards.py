"""Tests for estimate_mi's guards: overflow-free inputs, resolved scores, failures.

The reported cases (measured on main before the guards):
  * standardize='none', independent inputs scaled by 1e30: log K (5.545 nats
    at K = 256, the ceiling) or another huge number, from scores float32
    could not resolve;
  * standardize='zscore', a correlated Gaussian (MI 0.83) scaled by 1e30: 0.0
    nats, the float32 std having overflowed;
  * bound='nwj', learning_rate=1e3: -1.4e37 nats, returned as an estimate;
and the warning of an InfoNCE estimate near its log K ceiling.
"""

import math
import pickle
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import bounds
from infomax_jax import distributions as D
from infomax_jax import estimate
from infomax_jax.estimate import CeilingWarning
from infomax_jax.estimate import EstimationError
from infomax_jax.estimate import estimate_mi

# One compiled fit (infonce, concat, K = 64, <= 400 steps) for the first cases;
# one critic and the batch estimate, as in the reported cases.
_KW = dict(batch_size=64, steps=400, eval_every=50, patience=4, ensemble=1,
           all_pairs=False)
_N = 1000
_RHO = 0.9                                     # MI = -log(1 - 0.81) / 2 = 0.830


@pytest.fixture(scope='module')
def correlated():
  task = D.gaussian_sparse(1, 1, 1, _RHO)
  x, y = task.sample(jax.random.key(0), _N)
  return np.asarray(x), np.asarray(y), task.mutual_information


# ------------------------------------------------------------------- inputs --

def test_non_finite_inputs_name_the_array_and_first_index():
  x = np.random.default_rng(0).normal(size=(200, 2))
  bad = x.copy()
  bad[7, 0] = np.inf
  bad[5, 1] = np.nan
  with pytest.raises(ValueError, match=r'y has 2 non-finite values \(nan or inf\) '
                     r'in 2 samples; the first is y\[5, 1\] = nan'):
    estimate_mi(x, bad)
  one_d = x[:, 0].copy()
  one_d[3] = -np.inf
  with pytest.raises(ValueError, match=r'x has 1 non-finite .* the first is x\[3\] = -inf'):
    estimate_mi(one_d, x)
  # Finite float64 values beyond float32's range: fine standardised, not raw.
  huge = x * 1e300
  with pytest.raises(ValueError, match=r"x has 400 values beyond float32's range .* "
                     r"the first is x\[0, 0\] = .*standardize='none'"):
    estimate_mi(huge, x, standardize='none')
  with pytest.raises(ValueError, match=r"unknown on_failure 'ignore'; valid "
                     r'on_failures are: nan, raise'):
    estimate_mi(x, x, on_failure='ignore')


def _old_standardize(train, test, how):
  """The float32 standardisation of main before the guards (the reference)."""
  train, test = train.astype(np.float32), test.astype(np.float32)
  if how == 'none':
    return train, test
  if how == 'rank':
    n = train.shape[0]
    levels = estimate.inputs._normal_ppf((np.arange(n) + 0.5) / n).astype(np.float32)
    out_train, out_test = np.empty_like(train), np.empty_like(test)
    for j in range(train.shape[1]):
      srt = np.sort(train[:, j])
      out_train[:, j] = np.interp(train[:, j], srt, levels)
      out_test[:, j] = np.interp(test[:, j], srt, levels)
    return out_train, out_test
  center, scale = train.mean(0), train.std(0)
  scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
  return (train - center) / scale, (test - center) / scale


def _new(train, test, how):
  out = estimate.inputs._standardize(train.astype(np.float64), test.astype(np.float64), how)
  return tuple(a.astype(np.float32) for a in out)


def test_standardisation_is_overflow_free_and_unchanged_on_normal_data():
  rng = np.random.default_rng(0)
  train = rng.normal(size=(300, 3)).astype(np.float32)
  test = rng.normal(size=(100, 3)).astype(np.float32)
  # Normal float32 data: rank and none give the fit bit-identical inputs;
  # zscore (now float64) agrees to float32 rounding.
  for how in ('rank', 'none'):
    for new, old in zip(_new(train, test, how), _old_standardize(train, test, how)):
      np.testing.assert_array_equal(new, old, err_msg=how)
  for new, old in zip(_new(train, test, 'zscore'),
                      _old_standardize(train, test, 'zscore')):
    np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-6)
  # ~1e30 (float32) and ~1e300 (float64): the same z-scores as unscaled.
  with warnings.catch_warnings():
    warnings.simplefilter('error')         # no overflow on the way
    ref = _new(train, test, 'zscore')
    for scale, dtype in ((1e30, np.float32), (1e300, np.float64), (1e-300, np.float64)):
      got = estimate.inputs._standardize(
          (train.astype(dtype) * dtype(scale)).astype(np.float64),
          (test.astype(dtype) * dtype(scale)).astype(np.float64), 'zscore')
      for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5, err_msg=str(scale))
  with np.errstate(over='ignore'):
    old = _old_standardize(train * np.float32(1e30), test * np.float32(1e30), 'zscore')
  assert not np.any(old[0])                # main: the std overflowed, all zeros
  # A constant column is centred, not scaled (test values keep their offsets).
  const_train = np.full((300, 1), 1e30)
  const_test = np.array([[1e30], [1e30 + 1e16]])
  out_train, out_test = estimate.inputs._standardize(const_train, const_test, 'zscore')
  np.testing.assert_array_equal(out_train, 0.0)
  np.testing.assert_allclose(out_test[:, 0], [0.0, 1e-14], atol=1e-15)


# --------------------------------------------------------- reported cases --

def test_none_on_1e30_inputs_fails_instead_of_log_k():
  # Independent samples, x scaled by 1e30 and y not: on main the scores
  # depended on x alone, at ~1e29 float32 dropped the + log K of
  # logsumexp, and InfoNCE returned its ceiling log K (5.545 at K = 256).
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(_N, 1)), rng.normal(size=(_N, 1))
  with pytest.raises(EstimationError, match=r"bound='infonce'.*none of the 4 held-out "
                     r'evaluations was usable.*scores reach \|f\| = .*e\+2\d, where '
                     r"float32 .*rounding noise .*standardize='rank'") as err:
    estimate_mi(1e30 * x, y, standardize='none', **_KW)
  e = err.value
  assert isinstance(e, RuntimeError) and isinstance(e, FloatingPointError)
  # What main returned: log K = log 64 here (on CPU), or other rounding noise.
  assert math.isclose(e.value, math.log(64), rel_tol=1e-6) or abs(e.value) > 1e6
  assert e.bound == e.eval_bound == 'infonce' and e.result.failed
  again = pickle.loads(pickle.dumps(e))
  assert str(again) == str(e) and again.reason == e.reason and again.value == e.value
  assert e.result.score_curve.min() > 1e20
  # The opt-out: nan with the reason (and a warning), never log K.
  with pytest.warns(RuntimeWarning, match="returning nan .on_failure='nan'."):
    r = estimate_mi(1e30 * x, 1e30 * y, standardize='none', on_failure='nan', **_KW)
  assert r.failed and math.isnan(r.mi) and math.isnan(r.stderr)
  assert 'rounding noise' in r.reason


def test_zscore_on_1e30_inputs_matches_unscaled(correlated):
  x, y, true_mi = correlated
  np.testing.assert_allclose(true_mi, 0.8304, atol=1e-4)
  with warnings.catch_warnings():
    warnings.simplefilter('error')          # no overflow, no guard warnings
    plain = estimate_mi(x.astype(np.float32), y.astype(np.float32),
                        standardize='zscore', **_KW)
    big = estimate_mi((1e30 * x).astype(np.float32), (1e30 * y).astype(np.float32),
                      standardize='zscore', **_KW)
  assert not big.failed and big.reason == ''
  assert abs(big.mi - plain.mi) < 0.01, (big.mi, plain.mi)   # main: 0.0 nats
  # 400 steps; 500 test pairs (stderr ~0.05): 0.75 here, like the unscaled fit.
  assert abs(big.mi - true_mi) < 0.15, big
  assert big.score_curve.max() < 100


def test_diverged_nwj_fails_instead_of_minus_1e37(correlated):
  x, y, _ = correlated
  with pytest.raises(EstimationError, match=r"bound='nwj'.*unguarded estimate "
                     r'-\d.*e\+\d\d nats.*none of the 4 held-out evaluations was '
                     r'usable.*learning_rate \(now 1000\)') as err:
    estimate_mi(x, y, bound='nwj', learning_rate=1e3, **_KW)
  assert err.value.value < -1e6                      # what main returned
  assert err.value.result.score_curve.max() > 1e6    # scores float32 cannot resolve
  with pytest.warns(RuntimeWarning, match=r"bound='nwj'.*returning nan"):
    r = estimate_mi(x, y, bound='nwj', learning_rate=1e3, on_failure='nan', **_KW)
  assert r.failed and math.isnan(r.mi) and 'usable' in r.reason


def test_estimate_near_log_k_warns():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(_N, 4))
  y = x + 1e-3 * rng.normal(size=(_N, 4))           # MI ~ 28 nats >> log 16
  # The default reports InfoNCE over all 500 x 500 held-out pairs: its
  # ceiling is log 500, and it warns within 1.5 nats of it.
  with pytest.warns(CeilingWarning, match=r"the infonce estimate \d\.\d+ nats "
                    r"\(bound='infonce'\) is near its ceiling log K = log 500 "
                    r'= 6\.2146 nats \(within 5% or 1\.5 nats\).*use more samples'):
    r = estimate_mi(x, y, batch_size=16, steps=150, eval_every=50, patience=3,
                    learning_rate=1e-2, ensemble=1)
  assert math.log(500) - 1.5 <= r.mi <= math.log(500) + 1e-3 and not r.failed
  assert r.eval_pairs == 500


# ------------------------------------------------------------- diagnosis --

def _result(test_curve, score_curve, *, bound='infonce', mi=None, best=None,
            train_curve=None):
  test_curve = np.asarray(test_curve, np.float32)
  n = test_curve.size
  best = int(np.nanargmax(test_curve)) if best is None else best
  train = np.zeros(10 * n, np.float32) if train_curve is None else train_curve
  return estimate.MIEstimate(
      mi=float(test_curve[best]) if mi is None else mi, stderr=0.01, bound=bound,
      eval_bound=bound, critic='concat', train_curve=train,
      eval_steps=10 * np.arange(1, n + 1), test_curve=test_curve,
      best_step=10 * (best + 1), steps_run=10 * n, stopped_early=False, n_train=100,
      n_test=100, batch_size=16, seconds=0.0, params=None,
      score_curve=np.asarray(score_curve, np.float32))


def test_diagnosis_of_absurd_and_diverged_fits():
  top, eps = math.log(16), float(np.finfo(np.float32).eps)
  # Usability: finite, resolved scores (eps * max|f| <= 0.05), under the ceiling.
  cases = [(1.0, 10.0, True), (top, 10.0, True), (top + 5e-4, 10.0, True),
           (top + 0.01, 10.0, False), (1.0, 1e5, True), (1.0, 1e6, False),
           (math.nan, 1.0, False), (-math.inf, 1.0, False), (1.0, math.inf, False)]
  for est, peak, usable in cases:
    assert bool(estimate.guards._usable(est, peak, top, eps)) == usable, (est, peak)
    assert bool(estimate.guards._usable(jnp.float32(est), jnp.float32(peak), top, eps)) == usable
    problem = estimate.guards._problem(est, peak, top, np.float32, 'infonce', 16)
    assert (problem == '') == usable, (est, peak, problem)
  assert 'exceeds its ceiling log K = log 16' in estimate.guards._problem(
      top + 0.01, 10.0, top, np.float32, 'infonce', 16)

  # Beyond the ceiling everywhere: no usable evaluation, a failure.
  r = _result([top + 0.5, top + 0.3], [10.0, 10.0], mi=-math.inf)
  reason, warns = estimate.guards._diagnose(r, 16, 'Hint.')
  assert 'none of the 2 held-out evaluations was usable' in reason and not warns
  assert 'exceeds its ceiling' in reason and reason.endswith('Hint.')
  # Below the floor: a failure (a constant critic scores 0).
  r = _result([-3.0, -2.0], [10.0, 10.0], bound='nwj')
  reason, _ = estimate.guards._diagnose(r, 16, 'Hint.')
  assert 'below FLOOR = -1.0 nat' in reason
  assert estimate.guards._diagnose(_result([-0.9, -0.5], [1.0, 1.0], bound='nwj'), 16, '')[0] == ''
  # Training diverged before the reported evaluation: a failure ...
  train = np.zeros(30, np.float32)
  train[12] = np.nan                                  # step 13
  r = _result([0.5, 0.6, 0.7], [1.0, 1.0, 1.0], best=2, train_curve=train)
  reason, _ = estimate.guards._diagnose(r, 16, 'Hint.')
  assert 'training diverged before the reported evaluation (after 30 steps)' in reason
  assert 'became nan at step 13' in reason
  # ... after it: a warning, the estimate (after 10 steps) standing.
  r = _result([0.6, 0.5, math.nan], [1.0, 1.0, math.nan], best=0, train_curve=train)
  reason, warns = estimate.guards._diagnose(r, 16, 'Hint.')
  assert reason == '' and [w[1] for w in warns] == [RuntimeWarning]
  assert warns[0][0].startswith('1 of 3 held-out evaluations were unusable (after '
                                '30 steps the held-out infonce estimate is nan)')
  assert 'became nan at step 13' in warns[0][0]
  assert 'the best usable evaluation, after 10 steps' in warns[0][0]
  # Near the ceiling: a CeilingWarning; not for bounds without one.
  warns = estimate.guards._diagnose(_result([0.96 * top], [1.0]), 16, '')[1]
  assert [w[1] for w in warns] == [CeilingWarning]
  assert 'within 5% or 1.5 nats' in warns[0][0]
  assert estimate.guards._diagnose(_result([top - 1.51], [1.0]), 16, '')[1] == []
  # ... or within NEAR_CEILING_NATS of a larger ceiling (all pairs, K = 5000).
  big = math.log(5000)
  warns = estimate.guards._diagnose(_result([2.0], [1.0], mi=big - 1.4), 16, '', 5000)[1]
  assert [w[1] for w in warns] == [CeilingWarning] and 'log 5000' in warns[0][0]
  assert estimate.guards._diagnose(_result([2.0], [1.0], mi=big - 1.6), 16, '', 5000)[1] == []
  assert estimate.guards._diagnose(_result([3.0], [1.0], bound='nwj'), 16, '')[1] == []


def test_every_reported_estimate_is_0_at_a_constant_critic():
  # Why FLOOR is sound: each eval bound reaches 0 with a constant critic (a
  # baseline equal to it), so a best estimate below -1 nat is a failed fit.
  names = [n for n, b in bounds.REGISTRY.items() if b.mi_estimate]
  cs = jnp.array([0.0, 1.0])          # 0: the score itself; 1: NWJ's e^{f - 1}

  @jax.jit
  def best():
    def one(name, c):
      b = bounds.get(name)
      a = jnp.full((8,), c) if b.needs_baseline else None
      return b.estimate(jnp.full((8, 8), c), log_baseline=a)
    return {n: jnp.max(jax.vmap(lambda c, n=n: one(n, c))(cs)) for n in names}

  for name, value in best().items():
    assert float(value) >= -1e-6, name
