"""Tests for DEMI: conditional InfoNCE, the chain rule, oracle and resampled negatives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import bounds
from infomax_jax import demi
from infomax_jax import distributions


def _random_cov(n: int, seed: int) -> np.ndarray:
  a = np.random.default_rng(seed).normal(size=(n, n))
  return a @ a.T / n + 0.3 * np.eye(n)


def _schur_conditional_mi(cov, a, b, c):
  """I(A; B | C) from the conditional covariance of (A, B) given C (Schur)."""
  ab = np.r_[a, b]
  s = cov[np.ix_(ab, ab)]
  if len(c):
    s = s - cov[np.ix_(ab, c)] @ np.linalg.solve(cov[np.ix_(c, c)], cov[np.ix_(c, ab)])
  na = len(a)
  ld = lambda m: np.linalg.slogdet(m)[1]
  return 0.5 * (ld(s[:na, :na]) + ld(s[na:, na:]) - ld(s))


# ------------------------------------------------------ closed forms, chain --

def test_conditional_mi_matches_schur_complement_formula():
  cov = _random_cov(9, seed=0)
  for a, b, c in (([0, 1], [5, 6, 7], [2, 3]), ([4], [8], []), ([0], [1, 2], [3, 4, 5])):
    want = _schur_conditional_mi(cov, np.array(a), np.array(b), np.array(c, int))
    assert demi.gaussian_conditional_mi(cov, a, b, c) == pytest.approx(want, abs=1e-10)


@pytest.mark.parametrize('num_subviews', [2, 3, 6])
def test_chain_rule_holds_for_closed_form_gaussian_mis(num_subviews):
  model = demi.GaussianViews(_random_cov(10, seed=1), dx=6)
  masks = demi.prefix_masks(6, num_subviews)
  terms = model.chain_terms(masks)
  assert terms.shape == (num_subviews,)
  assert np.all(terms >= -1e-12)
  assert terms.sum() == pytest.approx(model.mutual_information(), rel=1e-10)


def test_correlated_benchmark_closed_form_and_equal_terms():
  model = demi.GaussianViews.correlated(20, 12.0)
  assert model.mutual_information() == pytest.approx(12.0, rel=1e-10)
  rho = distributions.mi_to_rho(12.0, 20)
  assert model.mutual_information() == pytest.approx(-10 * math.log(1 - rho**2))
  np.testing.assert_allclose(model.chain_terms(demi.prefix_masks(20, 4)), 3.0,
                             rtol=1e-10)


def test_prefix_masks_are_nested_and_end_with_all_of_x():
  masks = demi.prefix_masks(7, 3)
  np.testing.assert_array_equal(masks.sum(1), [3, 5, 7])
  assert np.all(masks[:-1] <= masks[1:])
  with pytest.raises(ValueError, match='nested'):
    demi.check_masks(masks[::-1], 7)
  with pytest.raises(ValueError, match=r'shape \(T, 5\)'):
    demi.check_masks(masks, 5)


def test_row_masks_select_bands_of_rows_next_to_the_bottom():
  masks = demi.row_masks((10, 7), height=14, width=28)
  assert masks.shape == (3, 392)
  np.testing.assert_array_equal(masks.sum(1), [4 * 28, 7 * 28, 14 * 28])
  image = masks.reshape(3, 14, 28)
  np.testing.assert_array_equal(image[0, :10], 0)   # x^(1) = rows 10-13 only
  np.testing.assert_array_equal(image[0, 10:], 1)
  demi.check_masks(masks, 392)                      # nested
  with pytest.raises(ValueError, match=r'strictly decreasing rows in \(0, 14\)'):
    demi.row_masks((7, 10), height=14, width=28)
  with pytest.raises(ValueError, match='strictly decreasing'):
    demi.row_masks((14,), height=14, width=28)


# ------------------------------------------------------ conditional InfoNCE --

def test_conditional_infonce_hand_made_values():
  b, n = 4, 7
  assert float(bounds.conditional_infonce(jnp.zeros(b), jnp.zeros((b, n)))) == \
      pytest.approx(0.0, abs=1e-6)
  # A dominant positive: the K-way classification is certain, estimate = log K.
  big = bounds.conditional_infonce(jnp.full((b,), 50.0), jnp.zeros((b, n)))
  assert float(big) == pytest.approx(math.log(n + 1), abs=1e-5)
  # One row by hand: log 3 + 2 - log(e^2 + e^0 + e^1).
  v = bounds.conditional_infonce(jnp.array([2.0]), jnp.array([[0.0, 1.0]]))
  assert float(v) == pytest.approx(math.log(3) + 2 - math.log(math.e**2 + 1 + math.e),
                                   abs=1e-6)


def test_conditional_infonce_with_in_batch_negatives_is_infonce():
  s = jax.random.normal(jax.random.PRNGKey(0), (6, 6)) * 3
  off = ~np.eye(6, dtype=bool)
  v = bounds.conditional_infonce(jnp.diagonal(s), s[off].reshape(6, 5))
  assert float(v) == pytest.approx(float(bounds.infonce(s)), abs=1e-5)
  # Uniform importance weights change nothing; the estimate never passes log K.
  w = bounds.conditional_infonce(jnp.diagonal(s), s[off].reshape(6, 5),
                                 negative_log_weights=jnp.full((6, 5), 3.0))
  assert float(w) == pytest.approx(float(v), abs=1e-5)
  assert float(v) <= math.log(6) + 1e-6


def test_importance_weights_pick_out_the_weighted_negative():
  pos, neg = jnp.array([0.0]), jnp.array([[0.0, 10.0]])
  # All the weight on the negative scored 0: like two candidates with equal score.
  v = bounds.conditional_infonce(pos, neg, negative_log_weights=jnp.array([[0.0, -1e9]]))
  assert float(v) == pytest.approx(math.log(3) - math.log(1 + 2), abs=1e-5)


def test_conditional_infonce_validation():
  with pytest.raises(ValueError, match=r'positive_scores must have shape \(B,\)'):
    bounds.conditional_infonce(jnp.zeros((3, 1)), jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match=r'negative_scores must have shape \(B, N\) = \(3, N\)'):
    bounds.conditional_infonce(jnp.zeros(3), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match='floating dtype'):
    bounds.conditional_infonce(jnp.zeros(3, jnp.int32), jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match='must have the shape of negative_scores'):
    bounds.conditional_infonce(jnp.zeros(3), jnp.zeros((3, 4)),
                               negative_log_weights=jnp.zeros((3, 5)))
  with pytest.raises(ValueError, match=r'conditional_scores\[0\]'):
    bounds.demi(jnp.zeros((3, 3)), [jnp.zeros(3)])


def test_conditional_infonce_bfloat16_grad_and_jit():
  pos = jnp.ones(5, jnp.bfloat16)
  neg = jnp.zeros((5, 3), jnp.bfloat16)
  assert bounds.conditional_infonce(pos, neg).dtype == jnp.float32
  g = jax.jit(jax.grad(lambda p, n: bounds.conditional_infonce(p, n)))(
      jnp.ones(5), jnp.zeros((5, 3)))
  assert np.all(np.isfinite(g)) and np.all(g > 0)


def test_demi_sums_infonce_and_conditional_terms():
  k = jax.random.split(jax.random.PRNGKey(1), 3)
  s = jax.random.normal(k[0], (8, 8))
  p, n = jax.random.normal(k[1], (8,)), jax.random.normal(k[2], (8, 7))
  terms = bounds.demi_terms(s, [(p, n), (p, n, jnp.zeros((8, 7)))])
  np.testing.assert_allclose(
      terms, [bounds.infonce(s), bounds.conditional_infonce(p, n),
              bounds.conditional_infonce(p, n)], atol=1e-6)
  assert float(bounds.demi(s, [(p, n)])) == pytest.approx(float(terms[:2].sum()), abs=1e-5)


# ------------------------------------------------- oracle + optimal critic --

def _terms_per_batch(model, masks, k, batches, negatives, seed=0):
  """(batches, T) estimates with the optimal critics; same data for every mode."""
  fns, samplers = model.optimal_critics(masks), model.oracle_samplers(masks)

  @jax.jit
  def one(key):
    data_key, neg_key = jax.random.split(key)
    x, y = model.sample(data_key, k)
    return demi.estimate_terms(fns, x, y, masks, neg_key, negatives=negatives,
                               oracle_samplers=samplers)[0]

  keys = jax.random.split(jax.random.PRNGKey(seed), batches)
  return np.asarray(jax.lax.map(one, keys))


def _se(v):
  return v.std(0, ddof=1) / math.sqrt(v.shape[0])


def test_oracle_conditional_term_approaches_true_conditional_mi():
  # d = 4, x' = first 2 coords: I(x'; y) = I(x; y | x') = 0.75 nats << log K.
  model = demi.GaussianViews.correlated(4, 1.5)
  masks = demi.prefix_masks(4, 2)
  true = model.chain_terms(masks)
  np.testing.assert_allclose(true, [0.75, 0.75], rtol=1e-10)
  est = _terms_per_batch(model, masks, k=256, batches=8, negatives='oracle')
  # With the optimal critic InfoNCE is biased down by O(e^I / K) only: the mean
  # is within noise (4 standard errors) plus 0.01 nat of the truth.
  assert np.all(np.abs(est.mean(0) - true) <= 4 * _se(est) + 0.01), (est.mean(0), _se(est))


def test_oracle_conditional_term_saturates_at_log_k():
  # Each term holds 5 nats > log 16: the estimate stays below log K, close to it.
  model = demi.GaussianViews.correlated(8, 10.0)
  masks = demi.prefix_masks(8, 2)
  est = _terms_per_batch(model, masks, k=16, batches=64, negatives='oracle')
  assert np.all(est <= math.log(16) + 1e-5)
  assert np.all(est.mean(0) >= math.log(16) - 0.25)
  # ... and the two-term DEMI exceeds log K, which a single InfoNCE cannot.
  assert est.sum(1).mean() > math.log(16) + 2.0


@pytest.mark.slow
def test_resampled_negatives_match_oracle_when_weights_are_informative():
  # I(x'; y) = 0.5 nats: p(y | x') is close to p(y), self-normalised importance
  # sampling from K - 1 in-batch candidates is accurate, and the conditional
  # term matches the oracle's (paired: same batches). With larger I(x'; y) the
  # approximation is biased upwards (see demi.estimate_terms).
  model = demi.GaussianViews.correlated(4, 1.0)
  masks = demi.prefix_masks(4, 2)
  oracle = _terms_per_batch(model, masks, k=128, batches=16, negatives='oracle')
  for negatives in ('resample', 'reweight'):
    approx = _terms_per_batch(model, masks, k=128, batches=16, negatives=negatives)
    np.testing.assert_allclose(approx[:, 0], oracle[:, 0], atol=1e-6)  # same InfoNCE
    assert abs(float((approx[:, 1] - oracle[:, 1]).mean())) < 0.05, negatives


def test_single_subview_is_infonce():
  model = demi.GaussianViews.correlated(3, 1.0)
  x, y = model.sample(jax.random.PRNGKey(0), 32)
  f = model.log_density_ratio(np.ones(3))
  terms, diag = demi.estimate_terms([f], x, y, np.ones((1, 3)), jax.random.PRNGKey(1))
  assert terms.shape == (1,) and diag['ess'].shape == (0,)
  assert float(terms[0]) == pytest.approx(
      float(bounds.infonce(demi.pairwise_scores(f, x, y))), abs=1e-6)


def test_optimal_embeddings_give_the_log_density_ratio_up_to_a_function_of_x():
  model = demi.GaussianViews(_random_cov(7, seed=4), dx=4)
  mask = np.array([1.0, 0.0, 1.0, 1.0])
  x, y = model.sample(jax.random.PRNGKey(0), 6)
  ex, ey = model.optimal_embeddings(mask)(x, y)
  assert ex.shape == ey.shape == (6, 4)
  scores = demi.pairwise_scores(model.log_density_ratio(mask), x, y)
  gap = np.asarray(ex @ ey.T) - np.asarray(scores)
  # Constant along each row (a function of x_i alone), so InfoNCE is the same.
  np.testing.assert_allclose(gap, np.repeat(gap[:, :1], 6, axis=1), atol=2e-4)
  assert float(bounds.infonce(ex @ ey.T)) == pytest.approx(
      float(bounds.infonce(scores)), abs=1e-4)


def test_oracle_sampler_draws_the_gaussian_conditional():
  model = demi.GaussianViews(_random_cov(5, seed=3), dx=3)
  mask = np.array([1.0, 1.0, 0.0])
  x = jnp.array([[0.5, -1.0, 2.0]])
  ys = np.asarray(model.conditional_sampler(mask)(jax.random.PRNGKey(0), x, 200_000))[0]
  c = model.cov
  g, yi = [0, 1], [3, 4]
  mean = c[np.ix_(yi, g)] @ np.linalg.solve(c[np.ix_(g, g)], np.asarray(x[0, :2]))
  cov = c[np.ix_(yi, yi)] - c[np.ix_(yi, g)] @ np.linalg.solve(
      c[np.ix_(g, g)], c[np.ix_(g, yi)])
  np.testing.assert_allclose(ys.mean(0), mean, atol=0.01)
  np.testing.assert_allclose(np.cov(ys.T), cov, atol=0.01)


# ------------------------------------------------------ importance resampling --

def test_importance_resample_discrete_frequencies():
  log_w = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4],
                             [0.25, 0.25, 0.25, 0.25],
                             [0.7, 0.1, 0.1, 0.1],
                             [0.5, 0.0 + 1e-30, 0.25, 0.25]]))
  n = 100_000
  idx = np.asarray(demi.importance_resample(jax.random.PRNGKey(0), log_w, n,
                                            exclude_self=False))
  assert idx.shape == (4, n) and idx.dtype == np.int32
  for i in range(4):
    p = np.asarray(jax.nn.softmax(log_w[i]))
    freq = np.bincount(idx[i], minlength=4) / n
    tol = 5 * np.sqrt(p * (1 - p) / n) + 1e-9
    assert np.all(np.abs(freq - p) <= tol), (i, freq, p)
  # exclude_self renormalises over j != i.
  idx = np.asarray(demi.importance_resample(jax.random.PRNGKey(1), log_w, n))
  for i in range(4):
    p = np.asarray(jax.nn.softmax(log_w[i].at[i].set(-jnp.inf)))
    freq = np.bincount(idx[i], minlength=4) / n
    assert freq[i] == 0.0
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-9)


def test_importance_resample_recovers_gaussian_conditional():
  # Candidates y_j ~ p(y) = N(0, 1), weights ∝ p(y | x') / p(y) with the optimal
  # critic: the resampled y's follow p(y | x') = N(rho x', 1 - rho²).
  rho = 0.8
  model = demi.GaussianViews(demi.correlated_gaussian_covariance(1, rho), dx=1)
  psi = model.log_density_ratio(np.ones(1))
  x = jnp.array([[-1.0], [0.0], [1.5]])
  y = jax.random.normal(jax.random.PRNGKey(0), (20_000, 1))
  log_w = psi(x[:, None, :], y[None, :, :])                 # (3, C)
  idx = demi.importance_resample(jax.random.PRNGKey(1), log_w, 50_000,
                                 exclude_self=False)
  draws = np.asarray(y[:, 0])[np.asarray(idx)]              # (3, 50000)
  np.testing.assert_allclose(draws.mean(1), rho * np.asarray(x[:, 0]), atol=0.03)
  np.testing.assert_allclose(draws.var(1), 1 - rho**2, atol=0.03)
  ess = demi.effective_sample_size(log_w, exclude_self=False)
  assert np.all((ess > 1000) & (ess < 20_000))


def test_importance_resample_validation_and_no_gradient():
  with pytest.raises(ValueError, match=r'square in-batch log_weights \(B, B\)'):
    demi.importance_resample(jax.random.PRNGKey(0), jnp.zeros((3, 4)), 2)
  with pytest.raises(ValueError, match=r'shape \(B, C\)'):
    demi.importance_resample(jax.random.PRNGKey(0), jnp.zeros(3), 2)
  with pytest.raises(ValueError, match='num_samples must be >= 1'):
    demi.importance_resample(jax.random.PRNGKey(0), jnp.zeros((3, 3)), 0)
  ess = demi.effective_sample_size(jnp.zeros((5, 5)))
  np.testing.assert_allclose(ess, 4.0, rtol=1e-6)


# ----------------------------------------------------------- pair critics --

@pytest.mark.slow
@pytest.mark.parametrize('name', ['separable', 'concat'])
def test_pair_critic_broadcasting_matches_explicit_pairs(name):
  critic = demi.make_pair_critic(name, hidden=(16, 16))
  kx, ky, ks, ki = jax.random.split(jax.random.PRNGKey(0), 4)
  x, y = jax.random.normal(kx, (5, 3)), jax.random.normal(ky, (5, 2))
  params = critic.init(ki, x[:1], y[:1])
  f = lambda a, b: critic.apply(params, a, b)
  matrix = demi.pairwise_scores(f, x, y)
  # Every pair on its own row: (25, dx) against (25, dy).
  ii, jj = np.meshgrid(np.arange(5), np.arange(5), indexing='ij')
  explicit = f(x[ii.ravel()], y[jj.ravel()]).reshape(5, 5)
  np.testing.assert_allclose(matrix, explicit, rtol=1e-5, atol=1e-5)
  sets = jax.random.normal(ks, (5, 4, 2))
  per_set = demi.set_scores(f, x, sets)
  explicit = f(jnp.repeat(x, 4, axis=0), sets.reshape(20, 2)).reshape(5, 4)
  np.testing.assert_allclose(per_set, explicit, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='unknown pair critic'):
    demi.make_pair_critic('bilinear')


@pytest.mark.slow
def test_trained_chain_gradients_stay_in_their_term():
  # With resampled negatives the weights come from critic 1 under stop_gradient:
  # term 2 must not train critic 1.
  model = demi.GaussianViews.correlated(4, 2.0)
  masks = demi.prefix_masks(4, 2)
  critic = demi.make_pair_critic('separable', hidden=(8,), embed_dim=4)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  params = [critic.init(k, jnp.zeros((1, 4)), jnp.zeros((1, 4))) for k in keys[:2]]
  x, y = model.sample(keys[2], 16)
  samplers = [model.conditional_sampler(masks[0])]

  for negatives in ('resample', 'reweight'):   # oracle: critic 1 is not used
    def term2(ps):
      fns = [lambda a, b, p=p: critic.apply(p, a, b) for p in ps]
      return demi.estimate_terms(fns, x, y, masks, keys[0], negatives=negatives,
                                 oracle_samplers=samplers)[0][1]
    grads = jax.jit(jax.grad(term2))(params)
    g1 = jax.tree.leaves(grads[0])
    g2 = jax.tree.leaves(grads[1])
    assert all(float(jnp.abs(g).max()) == 0.0 for g in g1), negatives
    assert any(float(jnp.abs(g).max()) > 0.0 for g in g2), negatives


def test_estimate_terms_validation():
  model = demi.GaussianViews.correlated(4, 1.0)
  x, y = model.sample(jax.random.PRNGKey(0), 8)
  f = model.log_density_ratio(np.ones(4))
  masks = demi.prefix_masks(4, 2)
  with pytest.raises(ValueError, match='one critic per subview'):
    demi.estimate_terms([f], x, y, masks, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match='needs 1 oracle_samplers'):
    demi.estimate_terms([f, f], x, y, masks, jax.random.PRNGKey(0), negatives='oracle')
  with pytest.raises(ValueError, match='unknown negatives'):
    demi.estimate_terms([f, f], x, y, masks, jax.random.PRNGKey(0), negatives='x')


# ---------------------------------------------------- training objectives --

def _chain(method, k=32, dim=4, mi=4.0, seed=0):
  """A correlated-Gaussian batch and the optimal-critic chain objective of ``method``."""
  model = demi.GaussianViews.correlated(dim, mi)
  masks = demi.method_masks(method, demi.prefix_masks(dim, 2))
  fns = model.optimal_critics(masks)
  estimate, loss = demi.chain_objective(
      lambda _, t, x, y: fns[t](x, y), masks, method,
      oracle_samplers=model.oracle_samplers(masks))
  x, y = model.sample(jax.random.PRNGKey(seed), k)
  return model, masks, estimate, loss, {'x': x, 'y': y}


def test_method_masks_and_unknown_method():
  masks = demi.prefix_masks(6, 3)
  np.testing.assert_array_equal(demi.method_masks('infonce', masks), np.ones((1, 6)))
  np.testing.assert_array_equal(demi.method_masks('demi_resample', masks), masks)
  with pytest.raises(ValueError, match="unknown method 'demi'; valid methods are: "
                     'demi_oracle, demi_resample, demi_reweight, infonce'):
    demi.method_masks('demi', masks)
  with pytest.raises(ValueError, match="method 'infonce' trains one critic"):
    demi.chain_objective(lambda *a: a[-1][..., 0], masks, 'infonce')


@pytest.mark.parametrize('method', ['infonce', 'demi_oracle', 'demi_resample',
                                    'demi_reweight'])
def test_chain_objective_metrics_and_loss(method):
  model, masks, estimate, loss, batch = _chain(method)
  key = jax.random.PRNGKey(1)
  # The same numbers as estimate_terms; the estimate is their sum.
  metrics, want = jax.jit(lambda batch, key: (
      estimate(None, batch, key),
      demi.estimate_terms(model.optimal_critics(masks), batch['x'], batch['y'],
                          masks, key, negatives=demi.METHODS[method] or 'resample',
                          oracle_samplers=model.oracle_samplers(masks))[0]))(batch, key)
  num_terms = len(masks)
  ess = [] if method in ('infonce', 'demi_oracle') else ['ess_2']
  assert sorted(metrics) == sorted(['estimate', *[f'term_{t + 1}' for t in range(num_terms)],
                                    *ess])
  terms = np.array([metrics[f'term_{t + 1}'] for t in range(num_terms)])
  np.testing.assert_allclose(terms, want, rtol=1e-5, atol=1e-5)
  assert float(metrics['estimate']) == pytest.approx(terms.sum(), abs=1e-5)
  assert np.all(terms <= math.log(32) + 1e-5)        # every term <= log K
  if ess:
    assert 1.0 <= float(metrics['ess_2']) <= 31.0    # out of K - 1 candidates
  value, (aux_metrics, aux) = jax.jit(loss)(None, jnp.float32(7), batch, key)
  assert float(value) == pytest.approx(-float(metrics['estimate']), abs=1e-5)
  assert float(aux) == 7 and sorted(aux_metrics) == sorted(metrics)   # passed on


def test_batch_mean_is_the_mean_over_fixed_batches():
  model, _, estimate, _, _ = _chain('demi_resample')

  sample = model.batch_sampler(32)
  batch = sample((), jax.random.PRNGKey(0))
  np.testing.assert_array_equal(
      np.concatenate([batch['x'], batch['y']], 1),
      np.concatenate(model.sample(jax.random.PRNGKey(0), 32), 1))
  mean = demi.batch_mean(estimate, sample)
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  got = mean(None, (), keys)

  @jax.jit
  def one(key):
    data_key, negatives_key = jax.random.split(key)
    return estimate(None, sample((), data_key), negatives_key)['estimate']

  per_batch = [one(key) for key in keys]
  assert float(got['estimate']) == pytest.approx(float(np.mean(per_batch)), abs=1e-5)
  # Fixed keys: the same batches at every call.
  assert float(mean(None, (), keys)['estimate']) == float(got['estimate'])
