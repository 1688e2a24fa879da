"""Tests for infomax_jax.estimate.estimate_mi."""

import jax
import numpy as np
import pytest

from infomax_jax import bounds
from infomax_jax import distributions as D
from infomax_jax import estimate
from infomax_jax.estimate import estimate_mi


@pytest.fixture(scope='module')
def gaussian_1d():
  task = D.gaussian_sparse(1, 1, 1, 0.75)
  x, y = task.sample(jax.random.key(0), 10_000)
  return np.asarray(x), np.asarray(y), task.mutual_information


@pytest.mark.slow
def test_default_on_1d_gaussian_is_within_0_05(gaussian_1d):
  x, y, true_mi = gaussian_1d
  np.testing.assert_allclose(true_mi, 0.4133, atol=1e-4)
  result = estimate_mi(x, y)
  assert abs(result.mi - true_mi) < 0.05, result
  assert 0 < result.stderr < 0.05
  assert result.bound == 'infonce' and result.eval_bound == 'infonce'
  # The default reports InfoNCE over all 5000 x 5000 held-out pairs of the
  # mean critic of 2, with a 95 % interval around it.
  assert result.eval_pairs == 5000 and result.member_estimates.shape == (2,)
  lo, hi = result.interval
  np.testing.assert_allclose(hi - lo, 2 * 1.959964 * result.stderr, rtol=1e-5)
  assert 'all 5000 x 5000 held-out pairs' in result.estimator
  # Curves: one training value per step, one held-out value per evaluation.
  assert result.train_curve.shape == (result.steps_run,)
  assert result.test_curve.shape == result.eval_steps.shape
  assert result.steps_run % 100 == 0 and result.steps_run <= 600
  assert result.best_step in result.eval_steps
  assert result.n_train + result.n_test == 10_000
  assert np.isfinite(result.train_curve).all()


def _small(x, y, **kwargs):
  """A cheap fit: default critics, small batches, few steps."""
  kw = dict(batch_size=64, steps=300, eval_every=50, patience=10, ensemble=1)
  kw.update(kwargs)
  return estimate_mi(x, y, **kw)


# Training is compiled once per bound (slow on a shared CPU), so the bounds
# with extra machinery are trained: mine (its state carried in the scan, DV
# reported), interpolated (a learned baseline) and jsd (its objective is no
# MI estimate; NWJ(f + 1) is reported). Every bound's held-out estimator is
# checked on fixed scores below; experiments/estimators.py trains every one.
@pytest.mark.slow
@pytest.mark.parametrize('bound,critic', [('mine', 'concat'),
                                          ('interpolated', 'separable'),
                                          ('jsd', 'concat')])
def test_bounds_train_on_inputs_of_different_dimensions(bound, critic):
  # x: 3-D, y: a 1-D array (n,): dimensions need not match.
  task = D.gaussian_sparse(3, 1, 1, 0.8)               # MI = 0.51 nats
  x, y = task.sample(jax.random.key(1), 600)
  result = _small(np.asarray(x), np.asarray(y)[:, 0], bound=bound,
                  critic=critic)
  assert result.eval_bound == bound         # the registry's reported estimate
  assert np.isfinite(result.mi) and np.isfinite(result.train_curve).all()
  # 300 steps on 300 training pairs recover most of the 0.51 nats.
  assert 0.25 < result.mi < 0.8, result


def test_held_out_estimate_is_the_registry_estimate():
  scores = jax.random.normal(jax.random.key(0), (8, 8)) + 2.0 * np.eye(8)
  a = jax.random.normal(jax.random.key(1), (8,))
  names = [n for n, b in bounds.REGISTRY.items() if b.mi_estimate]

  def spec(name):
    entry = bounds.get(name)
    kw = entry.defaults if name != 'interpolated' else {'alpha': 0.3}
    return estimate.core._Spec(
        bound=name, eval_bound=name, critic='concat', critic_kwargs=(),
        bound_kwargs=estimate.inputs._freeze(kw), eval_kwargs=estimate.inputs._freeze(kw),
        baseline_hidden=None, batch_size=8, eval_batch=8, num_eval_batches=1,
        chunk=1, num_chunks=1, patience=1, learning_rate=1e-3)

  # One jitted function for everything: eager op-by-op dispatch compiles
  # every primitive separately (slow on a shared CPU).
  @jax.jit
  def both(s, b):
    got = {n: estimate.core._held_out_estimate(spec(n), s, b) for n in names}
    expected = {n: bounds.get(n)(s, log_baseline=b if bounds.get(n).needs_baseline
                                 else None, state=bounds.get(n).init_state(),
                                 **dict(spec(n).eval_kwargs)).estimate
                for n in names}
    # The documented policy: MINE reports DV, JSD reports NWJ(f + 1).
    policy = {'mine': bounds.dv(s), 'jsd': bounds.nwj(s + 1.0),
              'interpolated': bounds.interpolated(s, b, alpha=0.3)}
    return got, expected, policy

  got, expected, policy = both(scores, a)
  for name in names:
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, err_msg=name)
  for name, value in policy.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


@pytest.mark.slow
def test_invariant_to_affine_rescaling_and_reuses_compilation(gaussian_1d):
  x, y, _ = gaussian_1d
  x, y = x[:600], y[:600]
  a = _small(x, y, seed=3)
  size = estimate.core._fit._cache_size()
  b = _small(1e3 * x - 7.0, y / 50.0 + 2.0, seed=3)
  np.testing.assert_allclose(b.mi, a.mi, atol=1e-4)
  c = _small(x, y, seed=4)                    # another seed: same compiled fit
  assert estimate.core._fit._cache_size() == size
  assert c.mi != a.mi


def test_errors_name_expected_and_actual():
  x = np.random.default_rng(0).normal(size=(200, 2))
  with pytest.raises(ValueError, match=r'same number of samples.*\(200, 2\).*\(199, 2\)'):
    estimate_mi(x, x[:199])
  bad = x.copy()
  bad[5, 1] = np.nan
  bad[7, 0] = np.inf
  with pytest.raises(ValueError, match='y has 2 non-finite values'):
    estimate_mi(x, bad)
  with pytest.raises(ValueError, match='too few samples: got n = 20'):
    estimate_mi(x[:20], x[:20])
  with pytest.raises(ValueError, match=r"unknown bound 'mie'; valid bounds are: dv, "
                     r'f_gan, .*, infonce, interpolated, jsd, mine, nwj, smile, tuba'):
    estimate_mi(x, x, bound='mie')
  with pytest.raises(ValueError, match='unknown critic .*valid critics are: bilinear'):
    estimate_mi(x, x, critic='mlp')
  with pytest.raises(ValueError, match="unknown eval_bound 'f_total_variation'; "
                     'valid eval_bounds are: dv, f_gan'):
    estimate_mi(x, x, eval_bound='f_total_variation')
  with pytest.raises(ValueError, match='needs a learned baseline'):
    estimate_mi(x, x, bound='nwj', eval_bound='tuba')
  with pytest.raises(ValueError, match=r"unknown bound_kwargs for 'smile': \['alpha'\]; "
                     r'valid keys are: clip'):
    estimate_mi(x, x, bound='smile', bound_kwargs={'alpha': 0.5})
  with pytest.raises(ValueError, match=r"unknown bound_kwargs for 'tuba': \['clip'\]; "
                     r'valid keys are: baseline_hidden'):
    estimate_mi(x, x, bound='tuba', bound_kwargs={'clip': 5.0})
  with pytest.raises(ValueError, match=r'shape \(n,\) or \(n, d\)'):
    estimate_mi(x[:, :, None], x)
  with pytest.raises(TypeError, match='real numbers'):
    estimate_mi(np.array(['a'] * 200), x)
  with pytest.raises(ValueError, match='batch_size must be a positive int'):
    estimate_mi(x, x, batch_size=0)
  with pytest.raises(ValueError, match=r'test_fraction must lie in \(0, 1\)'):
    estimate_mi(x, x, test_fraction=1.0)
  const = x.copy()
  const[:, 1] = 3.0
  with pytest.raises(ValueError, match=r'x\[:, 1\] is constant \(all 200 samples '
                     r'equal 3; 1 of 2 columns of x are constant\)'):
    estimate_mi(const, x)
  with pytest.raises(ValueError, match=r'^y is constant'):
    estimate_mi(x, np.ones(200))
  with pytest.raises(ValueError, match='ensemble must be a positive int'):
    estimate_mi(x, x, ensemble=0)
  with pytest.raises(ValueError, match=r'confidence must be a float in \(0, 1\)'):
    estimate_mi(x, x, confidence=95)
  with pytest.raises(ValueError, match="all_pairs=True needs eval_bound='infonce'"):
    estimate_mi(x, x, bound='nwj', all_pairs=True)


@pytest.mark.slow
def test_single_critic_batch_estimate_keeps_its_definition():
  # ensemble=1, all_pairs=False: the mean of the held-out batch estimates at
  # the best evaluation, stopping `patience` evaluations after it.
  task = D.gaussian_sparse(1, 1, 1, 0.75)
  x, y = (np.asarray(a) for a in task.sample(jax.random.key(5), 800))
  r = estimate_mi(x, y, batch_size=64, steps=400, eval_every=50, patience=2,
                  ensemble=1, all_pairs=False)
  np.testing.assert_allclose(
      r.test_curve[list(r.eval_steps).index(r.best_step)], r.mi, rtol=1e-6)
  assert (r.steps_run == r.best_step + 100 if r.stopped_early
          else r.steps_run == 400)
  assert r.eval_pairs == 64 and 'batches of 64 pairs' in r.estimator


@pytest.mark.slow
def test_all_pairs_estimate_matches_an_independent_computation():
  # The blockwise, padded all-pairs InfoNCE of the mean critic == the dense
  # (n_test, n_test) score matrix computed here with scipy's logsumexp.
  from scipy import special
  task = D.gaussian_sparse(2, 1, 1, 0.8)
  x, y = (np.asarray(a, np.float64) for a in task.sample(jax.random.key(6), 700))
  r = estimate_mi(x, y, batch_size=64, steps=100, eval_every=50, ensemble=3)
  assert r.n_test == 350 and r.eval_pairs == 350   # 350 = 2 blocks of 128 + 94
  # Rebuild the split and the standardisation exactly as estimate_mi does.
  key_split, _ = jax.random.split(jax.random.key(0))
  order = np.asarray(jax.random.permutation(key_split, 700))
  xs, ys = x[order], y[order]
  xtr, xte = estimate.inputs._standardize(xs[:350], xs[350:], 'rank')
  ytr, yte = estimate.inputs._standardize(ys[:350], ys[350:], 'rank')
  model = estimate.core._Model('concat', (('hidden', (16, 8)),), None)
  scores = np.stack([
      np.asarray(model.apply(jax.tree.map(lambda a, e=e: a[e], r.params),
                             xte.astype(np.float32), yte.astype(np.float32))[0],
                 np.float64) for e in range(3)])
  def infonce(s):
    return np.log(len(s)) + np.mean(np.diag(s) - special.logsumexp(s, axis=1))
  np.testing.assert_allclose(r.member_estimates, [infonce(s) for s in scores],
                             atol=2e-4)
  np.testing.assert_allclose(r.mi, infonce(scores.mean(0)), atol=2e-4)
  # Concavity: the mean critic scores at least the members' mean.
  assert r.mi >= np.mean(r.member_estimates) - 1e-5


def test_cosine_schedule_decays_to_five_percent_of_the_peak():
  # Adam on a constant gradient moves each parameter by about the learning
  # rate per step: the step sizes trace the schedule.
  spec = estimate.core._Spec(
      bound='infonce', eval_bound='infonce', critic='concat', critic_kwargs=(),
      bound_kwargs=(), eval_kwargs=(), baseline_hidden=None, batch_size=8,
      eval_batch=8, num_eval_batches=1, chunk=10, num_chunks=10, patience=1,
      learning_rate=0.02, lr_schedule='cosine')
  tx = estimate.core._optimizer(spec)
  p = jax.numpy.zeros(())
  state = tx.init(p)
  sizes = []
  for _ in range(100):
    u, state = tx.update(jax.numpy.ones(()), state, p)
    sizes.append(-float(u))
  np.testing.assert_allclose(sizes[0], 0.02, rtol=1e-3)
  np.testing.assert_allclose(sizes[-1], 0.02 * 0.05, rtol=0.05)
  assert all(a >= b for a, b in zip(sizes, sizes[1:]))
  constant = estimate.core._optimizer(
      estimate.core.dataclasses.replace(spec, lr_schedule='constant'))
  state = constant.init(p)
  for _ in range(100):
    u, state = constant.update(jax.numpy.ones(()), state, p)
  np.testing.assert_allclose(-float(u), 0.02, rtol=1e-3)


def test_bad_lr_schedule_lists_the_valid_ones():
  x = np.random.default_rng(0).normal(size=(64, 1))
  with pytest.raises(ValueError, match='cosine.*constant|constant.*cosine'):
    estimate_mi(x, x, lr_schedule='linear')


def test_estimators_config_runs_estimate_mi_defaults():
  # The check report measures the default estimator: every keyword of the
  # experiment's config.estimator is estimate_mi's own default.
  import inspect  # pylint: disable=g-import-not-at-top

  from experiments.configs import estimators as cfg  # pylint: disable=g-import-not-at-top
  defaults = {k: v.default for k, v in
              inspect.signature(estimate_mi).parameters.items()}
  config = cfg.get_config('check')
  for k, v in config.estimator.to_dict().items():
    assert defaults[k] == v, k
  assert tuple(config.concat_hidden) == estimate.CRITIC_DEFAULTS['concat']['hidden']
