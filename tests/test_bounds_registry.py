"""Tests of the bound registry (infomax_jax.bounds.REGISTRY / get).

Every entry is checked against independent references: its objective and
reported estimate on a hand-made matrix against numpy loops
(``tests/bounds_reference.py``); its ``lower_bound`` flag on correlated
Gaussians of known MI, where a variational lower bound is tight at its
optimal critic and never above the MI for other critics, and every other
entry is either not tight or exceeds the MI for some critic. Then the
properties every entry must have: jit == eager, low-precision inputs computed
in float32, finite values and gradients at scores of 1e4, clear errors.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import bounds
from tests import bounds_reference as ref


def _log_ratio(s, divergence):
  return np.vectorize(lambda v: ref.log_ratio(v, divergence))(s)


def _f_expected(divergence):
  objective = lambda s: ref.f_divergence_scores(s, divergence)
  if divergence == 'total_variation':
    return objective, None
  if divergence == 'kl':
    return objective, objective
  return objective, lambda s: ref.nwj(_log_ratio(s, divergence) + 1.0)


# name -> (objective, reported estimate or None) on one (K, K) matrix, with
# the registry's default hyperparameters and the inputs of ``_inputs``.
EXPECTED = {
    'dv': (ref.dv, ref.dv),
    'nwj': (ref.nwj, ref.nwj),
    'infonce': (ref.infonce, ref.infonce),
    'tuba': ((lambda s: ref.tuba(s, ref.A3)),) * 2,
    'interpolated': ((lambda s: ref.interpolated(s, ref.A3, 0.01)),) * 2,
    'smile': ((lambda s: ref.smile(s, 5.0)),) * 2,
    'mine': (ref.dv, ref.dv),                      # first step: DV; reports DV
    'jsd': (ref.jsd, lambda s: ref.nwj(s + 1.0)),  # trains JSD, reports NWJ
    **{f'f_{d}': _f_expected(d) for d in bounds.F_DIVERGENCES},
}


def _inputs(spec, k, num_locations=None):
  """The extra inputs of an entry: a baseline a(y) and/or its initial state."""
  kw = {}
  if spec.needs_baseline:
    kw['log_baseline'] = jnp.asarray(ref.A3 if k == 3 else np.zeros(k), jnp.float32)
  if spec.stateful:
    kw['state'] = spec.init_state(num_locations)
  return kw


def test_every_entry_has_a_reference():
  assert set(EXPECTED) == set(bounds.REGISTRY)
  for name, spec in bounds.REGISTRY.items():
    assert spec.name == name and bounds.get(name) is spec
    assert spec.mi_estimate == (EXPECTED[name][1] is not None), name
  with pytest.raises(TypeError):                 # one registry, read-only
    bounds.REGISTRY['cpc'] = bounds.REGISTRY['infonce']


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_objective_and_estimate_on_hand_made_scores(name):
  spec = bounds.get(name)
  objective, estimate = EXPECTED[name]
  s = jnp.asarray(ref.S3, jnp.float32)
  out = jax.jit(lambda s: spec(s, **_inputs(spec, 3)))(s)
  np.testing.assert_allclose(out.objective, objective(ref.S3), rtol=2e-6, atol=2e-6)
  if estimate is None:
    assert out.estimate is None
    with pytest.raises(ValueError, match=f"bound '{name}' reports no MI estimate"):
      spec.estimate(s)
    return
  np.testing.assert_allclose(out.estimate, estimate(ref.S3), rtol=2e-5, atol=2e-5)
  kw = {k: v for k, v in _inputs(spec, 3).items() if k != 'state'}
  np.testing.assert_allclose(jax.jit(lambda s: spec.estimate(s, **kw))(s),
                             estimate(ref.S3), rtol=2e-5, atol=2e-5)
  # (K, K, L) scores: the mean over the locations.
  s3 = np.stack([ref.S3, ref.S3.T[::-1] * 0.7 - 0.2], axis=2)
  want = np.mean([objective(s3[:, :, l]) for l in range(2)])
  got = spec(jnp.asarray(s3, jnp.float32), **_inputs(spec, 3, num_locations=2))
  np.testing.assert_allclose(got.objective, want, rtol=2e-6, atol=2e-6)


def test_hyperparameters_and_state_are_passed_through():
  s = jnp.asarray(ref.S3, jnp.float32)
  smile = bounds.get('smile')
  assert smile.defaults == {'clip': 5.0}
  np.testing.assert_allclose(smile(s, clip=1.0).estimate, ref.smile(ref.S3, 1.0),
                             rtol=1e-6)
  np.testing.assert_allclose(smile(s, clip=None).objective, ref.dv(ref.S3),
                             rtol=1e-6)
  a = jnp.asarray(ref.A3, jnp.float32)
  np.testing.assert_allclose(
      bounds.get('interpolated')(s, log_baseline=a, alpha=0.5).objective,
      ref.interpolated(ref.S3, ref.A3, 0.5), rtol=1e-6)
  mine = bounds.get('mine')
  first = mine(s, state=mine.init_state())
  second = mine(s + 1.0, state=first.state, momentum=0.5)
  assert int(second.state.count) == 2
  ema = 0.5 * np.exp(first.state.log_ema) + 0.5 * np.mean(
      np.exp(ref.S3 + 1.0)[~np.eye(3, dtype=bool)])
  np.testing.assert_allclose(np.exp(second.state.log_ema), ema, rtol=1e-5)
  assert bounds.get('dv').init_state() is None


# ------------------------------------------------------- lower-bound flags --

def _optimal_critic(name, t):
  """Entry ``name``'s optimal critic on log density ratios t (a(y) = 0)."""
  if name == 'nwj':
    return t + 1.0                              # NWJ is tight at 1 + log p/q
  if name == 'f_total_variation':
    return 30.0 * np.sign(t)
  if name.startswith('f_'):
    return ref.V_STAR[name[2:]](t)
  return t                                      # log p/q


MI, DIM, K, BATCHES = 1.0, 5, 1000, 3


@pytest.fixture(scope='module')
def gaussian_values():
  """Each entry's mean objective over batches of scores at I = 1 nat: at its
  own optimal critic, shifted by +10 and halved; and the tolerance."""
  t = ref.gaussian_scores(np.random.default_rng(0), K, DIM, MI,
                          num_batches=BATCHES)
  diag = np.stack([np.diag(t[:, :, b]) for b in range(BATCHES)])
  tol = 5.0 * np.std(diag, ddof=1) / math.sqrt(K * BATCHES) + 0.05
  values = {}
  for name, spec in bounds.REGISTRY.items():
    objective = jax.jit(lambda s, spec=spec: spec(s, **_inputs(spec, K)).objective)
    for b in range(BATCHES):
      critic = _optimal_critic(name, t[:, :, b])
      for label, s in (('optimal', critic), ('shifted', critic + 10.0),
                       ('halved', 0.5 * critic)):
        values.setdefault((name, label), []).append(
            float(objective(jnp.asarray(s, jnp.float32))))
  return {key: float(np.mean(v)) for key, v in values.items()}, tol


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_lower_bound_flag_on_correlated_gaussians(name, gaussian_values):
  values, tol = gaussian_values
  optimal = values[name, 'optimal']
  others = [values[name, 'shifted'], values[name, 'halved']]
  if bounds.get(name).lower_bound:
    # Tight at the optimal critic, never above the MI for other critics.
    assert abs(optimal - MI) < tol, (name, optimal)
    assert max(others) < MI + tol, (name, others)
  else:
    # Not a bound on I: its optimum is another quantity, or it can exceed I.
    assert abs(optimal - MI) > 0.25 or max(others) > MI + 0.25, (
        name, optimal, others)


# ----------------------------------------------- properties of all entries --

def _scalar_fn(name):
  """scores -> objective (+ estimate) of entry ``name`` as one scalar."""
  spec = bounds.get(name)

  def fn(s):
    out = spec(s, **_inputs(spec, s.shape[0]))
    return out.objective + (0.0 if out.estimate is None else out.estimate)
  return fn


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_jit_equals_eager_and_low_precision_is_computed_in_float32(name):
  fn = _scalar_fn(name)
  s = jnp.asarray(np.random.default_rng(13).normal(scale=2.0, size=(6, 6)),
                  jnp.float32)
  want = jax.jit(fn)(s)
  np.testing.assert_allclose(fn(s), want, rtol=1e-5, atol=1e-6)
  for dtype in (jnp.bfloat16, jnp.float16):
    low = s.astype(dtype)
    value = jax.jit(fn)(low)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, jax.jit(fn)(low.astype(jnp.float32)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_float32_scores_of_1e4_give_finite_values_and_gradients(name):
  fn = jax.jit(jax.value_and_grad(_scalar_fn(name)))
  for s in ref.huge_scores():
    value, grad = fn(jnp.asarray(s, jnp.float32))
    assert np.isfinite(value), (name, s)
    assert np.all(np.isfinite(grad)), (name, s)


@pytest.mark.parametrize('shape, pattern', [
    ((3, 4), r'square.*\(3, 4\)'),
    ((4,), r'\(K, K\) or \(K, K, L\).*rank 1.*\(4,\)'),
    ((2, 2, 2, 2), r'\(K, K\) or \(K, K, L\).*rank 4'),
    ((1, 1), r'K >= 2.*K = 1'),
])
def test_bad_shapes_raise_for_every_entry(shape, pattern):
  for name in EXPECTED:
    with pytest.raises(ValueError, match=pattern):
      _scalar_fn(name)(np.zeros(shape, np.float32))


def test_integer_scores_raise_for_every_entry():
  for name in EXPECTED:
    with pytest.raises(ValueError, match='floating dtype.*int32'):
      _scalar_fn(name)(np.zeros((3, 3), np.int32))


# ------------------------------------------------------------------ errors --

def test_unknown_name_raises_listing_every_valid_name():
  with pytest.raises(ValueError, match="unknown bound 'nce'; valid bounds are: "
                     + ', '.join(sorted(bounds.REGISTRY))):
    bounds.get('nce')
  with pytest.raises(TypeError, match='bound name must be a str'):
    bounds.get(None)


def test_missing_or_extra_inputs_and_hyperparameters_raise():
  s = jnp.asarray(ref.S3, jnp.float32)
  with pytest.raises(ValueError, match="bound 'tuba' needs log_baseline"):
    bounds.get('tuba')(s)
  with pytest.raises(ValueError, match="bound 'mine' needs state"):
    bounds.get('mine')(s)
  with pytest.raises(ValueError, match="bound 'dv' takes no log_baseline"):
    bounds.get('dv')(s, log_baseline=0.0)
  with pytest.raises(ValueError, match="bound 'nwj' takes no state"):
    bounds.get('nwj')(s, state=bounds.mine_init())
  with pytest.raises(ValueError, match=r"unknown hyperparameters for bound 'smile': "
                     r"\['alpha'\]; valid keys are: clip"):
    bounds.get('smile')(s, alpha=0.5)
  with pytest.raises(ValueError, match=r"bound 'interpolated' needs log_baseline "
                     r'besides the scores; the bounds of the scores alone are: '
                     r'dv, nwj, infonce, smile, jsd, f_'):
    bounds.get('interpolated', scores_only=True)
  assert bounds.get('jsd', scores_only=True) is bounds.REGISTRY['jsd']
