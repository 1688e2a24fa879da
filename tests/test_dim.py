"""Deep InfoMax: encoder shapes, vmapped scores, prior-matching game, W1, energy."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from infomax_jax import bounds
from infomax_jax import dim
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import train

# --- Encoder. ---


@pytest.mark.parametrize('shape', [(3, 28, 28), (3, 28, 28, 1), (3, 32, 32, 3)])
def test_dim_encoder_shapes(shape):
  enc = encoders.make_encoder('dim_conv', norm='layer')
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  variables = jax.eval_shape(enc.init, jax.random.PRNGKey(0), x)
  out = jax.eval_shape(enc.apply, variables, x)
  assert out['local'].shape == (3, 8, 8, 128)   # the paper's 8x8 local map
  assert out['conv'].shape == (3, 4, 4, 256)
  assert out['fc'].shape == (3, 1024) and out['y'].shape == (3, 64)


@pytest.mark.slow
def test_dim_encoder_pads_to_input_size():
  # An image smaller than input_size equals the same image zero-padded by hand
  # (12 -> 16 here; MNIST's 28 -> 32 the same way).
  enc = encoders.DIMEncoder(channels=(4, 8, 8), fc_units=8, features=4,
                            norm='none', input_size=16)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 12, 12, 1))
  params = jax.jit(enc.init)(jax.random.PRNGKey(0), x)
  padded = np.zeros((2, 16, 16, 1), np.float32)
  padded[:, 2:14, 2:14] = np.asarray(x)
  apply = jax.jit(enc.apply)
  np.testing.assert_allclose(apply(params, x)['y'],
                             apply(params, jnp.asarray(padded))['y'],
                             rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_dim_encoder_batch_norm_state():
  enc = encoders.DIMEncoder(channels=(4, 8, 8), fc_units=8, features=4,
                            input_size=16)
  x = jax.random.uniform(jax.random.PRNGKey(1), (4, 12, 12))
  variables = jax.jit(enc.init)(jax.random.PRNGKey(0), x)
  assert 'batch_stats' in variables
  _, updated = jax.jit(lambda v, x: enc.apply(v, x, train=True,
                                              mutable=['batch_stats']))(variables, x)
  before = jax.tree.leaves(variables['batch_stats'])
  after = jax.tree.leaves(updated['batch_stats'])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_dim_encoder_errors():
  enc = encoders.DIMEncoder()
  with pytest.raises(TypeError, match='float images'):
    enc.init(jax.random.PRNGKey(0), jnp.zeros((2, 28, 28), jnp.uint8))
  with pytest.raises(ValueError, match='square images'):
    enc.init(jax.random.PRNGKey(0), jnp.zeros((2, 28, 30)))
  with pytest.raises(ValueError, match='square images'):
    enc.init(jax.random.PRNGKey(0), jnp.zeros((2, 64, 64, 3)))
  with pytest.raises(ValueError, match="valid: \\('batch', 'layer', 'none'\\)"):
    encoders.DIMEncoder(norm='group').init(jax.random.PRNGKey(0),
                                           jnp.zeros((2, 28, 28)))


# --- Scores. ---


def test_local_scores_brute_force():
  rng = np.random.default_rng(0)
  local = rng.normal(size=(5, 7, 3))    # K=5 images, L=7 locations, U=3
  glob = rng.normal(size=(5, 3))
  expected = np.zeros((5, 5, 7))
  for i in range(5):
    for j in range(5):
      for l in range(7):
        expected[i, j, l] = sum(local[i, l, u] * glob[j, u] for u in range(3))
  got = dim.local_scores(jnp.asarray(local, jnp.float32),
                         jnp.asarray(glob, jnp.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_global_scores_brute_force():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
  got = dim.global_scores(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
  np.testing.assert_allclose(got, a @ b.T, rtol=1e-5, atol=1e-5)


def test_score_shape_errors():
  with pytest.raises(ValueError, match='local codes'):
    dim.local_scores(jnp.zeros((4, 3)), jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match='local codes'):
    dim.local_scores(jnp.zeros((4, 9, 3)), jnp.zeros((5, 3)))
  with pytest.raises(ValueError, match='two \\(K, U\\)'):
    dim.global_scores(jnp.zeros((4, 3)), jnp.zeros((4, 2)))


SIDE = 12   # small images (padded to 16: a 4x4 local map) keep the tests fast


def _small_model(alpha=0.0, beta=1.0):
  enc = encoders.DIMEncoder(channels=(4, 8, 8), fc_units=16, features=6,
                            norm='layer', input_size=16)
  return dim.DeepInfoMax(enc, critic_units=8, use_global=bool(alpha),
                         use_local=bool(beta))


@pytest.mark.slow
def test_model_scores_are_pairwise():
  # s[i, j, l] = <phi(C_l(x_i)), psi(Y_j)>: permuting the batch permutes the
  # rows and columns (with a per-example norm no example sees another).
  model = _small_model(alpha=1.0, beta=1.0)
  x = jax.random.uniform(jax.random.PRNGKey(2), (6, SIDE, SIDE))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  apply = jax.jit(model.apply)
  out = apply(params, x)
  assert out['local_scores'].shape == (6, 6, 16)
  assert out['global_scores'].shape == (6, 6)
  perm = np.array([3, 0, 5, 1, 4, 2])
  out_p = apply(params, x[perm])
  np.testing.assert_allclose(out_p['local_scores'],
                             out['local_scores'][perm][:, perm], atol=1e-5)
  np.testing.assert_allclose(out_p['global_scores'],
                             out['global_scores'][perm][:, perm], atol=1e-5)


@pytest.mark.slow
def test_local_infonce_is_mean_over_locations():
  scores = jax.random.normal(jax.random.PRNGKey(3), (5, 5, 4))
  per_loc = [bounds.infonce(scores[:, :, l]) for l in range(4)]
  np.testing.assert_allclose(bounds.infonce(scores), np.mean(per_loc), rtol=1e-6)
  total, metrics = dim.mi_terms({'local_scores': scores}, estimator='infonce',
                                alpha=0.0, beta=2.0)
  np.testing.assert_allclose(total, 2 * np.mean(per_loc), rtol=1e-6)
  assert set(metrics) == {'infonce_local'}
  _, metrics = dim.mi_terms({'local_scores': scores}, estimator='jsd',
                            alpha=0.0, beta=1.0)
  assert set(metrics) == {'jsd_local', 'infonce_local'}
  with pytest.raises(ValueError, match='valid DIM estimators are: dv, infonce, jsd'):
    dim.mi_terms({'local_scores': scores}, estimator='nce', alpha=0, beta=1)


# --- Prior matching. ---


def test_gan_losses_hand_values():
  zero = jnp.zeros(3)
  np.testing.assert_allclose(dim.discriminator_loss(zero, zero), 2 * np.log(2),
                             rtol=1e-6)
  np.testing.assert_allclose(dim.generator_loss(zero), np.log(2), rtol=1e-6)
  d = jnp.array([2.0, -1.0])
  np.testing.assert_allclose(dim.generator_loss(d),
                             np.mean(np.log1p(np.exp(-np.array([2.0, -1.0])))),
                             rtol=1e-6)
  np.testing.assert_allclose(
      dim.discriminator_accuracy(jnp.array([1.0, -1.0]), jnp.array([-2.0, -3.0])),
      0.75)


def test_gradient_penalty_linear_discriminator():
  w = jnp.array([1.0, -2.0, 0.5])
  v = jax.random.uniform(jax.random.PRNGKey(0), (7, 3))
  np.testing.assert_allclose(
      dim.gradient_penalty(lambda u: u @ w + 3.0, v), float(w @ w), rtol=1e-6)


def test_wasserstein_to_uniform_closed_forms():
  n = 8
  midpoints = ((np.arange(n) + 0.5) / n)[:, None]
  # Each midpoint is within its own quantile cell: W1 = 1 / (4n).
  np.testing.assert_allclose(evaluation.wasserstein_to_uniform(jnp.asarray(midpoints)),
                             1 / (4 * n), rtol=1e-6)
  # All mass at 0: W1 = E|U - 0| = 1/2; at 1: 1/2; at 1/2: 1/4.
  for value, expected in ((0.0, 0.5), (1.0, 0.5), (0.5, 0.25)):
    v = jnp.full((n, 2), value)
    np.testing.assert_allclose(evaluation.wasserstein_to_uniform(v), expected, rtol=1e-6)


def test_wasserstein_to_uniform_quadrature():
  v = np.random.default_rng(4).beta(2.0, 5.0, size=(37, 3))
  u = (np.arange(200000) + 0.5) / 200000
  quantiles = np.sort(v, axis=0)[np.floor(u * 37).astype(int)]
  expected = np.mean(np.mean(np.abs(quantiles - u[:, None]), axis=0))
  np.testing.assert_allclose(evaluation.wasserstein_to_uniform(jnp.asarray(v)),
                             expected, rtol=1e-4)


@pytest.mark.slow
def test_energy_distance_closed_form():
  # All of X at 0 against the midpoint grid V_k = (k + 1/2)/m of [0, 1]:
  # E|X - V| = 1/2 exactly, E|X - X'| = 0, and the U-statistic over k != l
  # of |k - l|/m is (m + 1)/(3m); so the energy is 2/3 - 1/(3m).
  m = 4000
  grid = jnp.asarray(((np.arange(m) + 0.5) / m)[:, None], jnp.float32)
  np.testing.assert_allclose(evaluation.energy_distance(jnp.zeros((50, 1)), grid),
                             2 / 3 - 1 / (3 * m), rtol=1e-5)
  # Equal samples: exactly zero up to the U-statistics' diagonal terms.
  v = jax.random.uniform(jax.random.PRNGKey(0), (300, 5))
  assert abs(float(evaluation.energy_distance(v, v))) < 0.01


def test_energy_distance_brute_force():
  rng = np.random.default_rng(3)
  x, v = rng.random((23, 4)), 0.5 * rng.random((17, 4)) + 0.2
  dist = lambda a, b: np.linalg.norm(a - b)
  xv = np.mean([dist(a, b) for a in x for b in v])
  xx = np.mean([dist(x[i], x[j]) for i in range(23) for j in range(23) if i != j])
  vv = np.mean([dist(v[i], v[j]) for i in range(17) for j in range(17) if i != j])
  got = evaluation.energy_distance(jnp.asarray(x, jnp.float32), jnp.asarray(v, jnp.float32))
  np.testing.assert_allclose(got, 2 * xv - xx - vv, rtol=1e-5)
  np.testing.assert_allclose(
      got, evaluation.energy_distance(jnp.asarray(v, jnp.float32),
                               jnp.asarray(x, jnp.float32)), rtol=1e-5)
  with pytest.raises(ValueError, match=r'energy_distance expects .* got shapes'):
    evaluation.energy_distance(jnp.zeros((5, 3)), jnp.zeros((5, 2)))
  with pytest.raises(ValueError, match='N, M >= 2'):
    evaluation.energy_distance(jnp.zeros((1, 3)), jnp.zeros((5, 3)))


def _config(**fields):
  base = dict(estimator='infonce', alpha=0.0, beta=1.0, gamma=1.0,
              gradient_penalty=0.0, critic_units=8)
  base.update(fields)
  return ml_collections.ConfigDict(base)


def _state(model, disc, tx, key=0):
  params, stats = dim.init(model, disc, jax.random.PRNGKey(key), (SIDE, SIDE), 6)
  return train.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=tx.init(params), aux=stats,
                          key=jax.random.PRNGKey(1))


@pytest.mark.slow
@pytest.mark.parametrize('penalty', [0.0, 10.0])
def test_update_each_player_minimises_its_own_loss(penalty):
  # With SGD at rate 1 the update is minus the gradient: check each player's
  # gradient against an independent computation of its own loss.
  config = _config(gradient_penalty=penalty)
  model, disc = _small_model(), dim.PriorDiscriminator((5,))
  tx = optax.sgd(1.0)
  state = _state(model, disc, tx)
  x = jax.random.uniform(jax.random.PRNGKey(5), (6, SIDE, SIDE))
  key = jax.random.PRNGKey(6)
  new, metrics = jax.jit(lambda s: dim.make_update(model, disc, config)(
      s, {'x': x}, key, tx))(state)
  params = state.params
  d = lambda p, v: disc.apply({'params': p}, v)

  def encoder_loss(p):
    out = model.apply({'params': p}, x)
    mi = bounds.infonce(out['local_scores'])
    return -mi + dim.generator_loss(d(params['disc'], jax.nn.sigmoid(out['y'])))

  encoded = jax.nn.sigmoid(model.apply({'params': params['model']}, x)['y'])
  prior = jax.random.uniform(key, encoded.shape)

  def disc_loss(p):
    value = jnp.mean(jax.nn.softplus(-d(p, prior))) + jnp.mean(
        jax.nn.softplus(d(p, encoded)))
    grads = jax.vmap(jax.grad(lambda u: d(p, u[None])[0]))(prior)
    return value + penalty * jnp.mean(jnp.sum(grads ** 2, -1))

  for name, loss in (('model', encoder_loss), ('disc', disc_loss)):
    expected = jax.jit(jax.grad(loss))(params[name])
    step = jax.tree.map(lambda a, b: a - b, params[name], new.params[name])
    for e, s in zip(jax.tree.leaves(expected), jax.tree.leaves(step)):
      np.testing.assert_allclose(s, e, rtol=2e-4, atol=1e-6)
  np.testing.assert_allclose(metrics['loss'], encoder_loss(params['model']),
                             rtol=1e-5)


def test_adversarial_signs_oppose():
  # On the shared logit D(sigma(y)), the discriminator's loss pushes it down
  # (call it encoded) and the encoder's loss pushes it up (call it prior).
  d = jnp.array([0.3, -1.2, 2.0])
  g_disc = jax.grad(lambda t: dim.discriminator_loss(jnp.zeros(3), t))(d)
  g_gen = jax.grad(dim.generator_loss)(d)
  assert np.all(np.asarray(g_disc) > 0) and np.all(np.asarray(g_gen) < 0)


def test_encoder_gradient_moves_y_toward_the_prior():
  # Against a fixed linear discriminator D(v) = w.v, the encoder's descent
  # direction on sigma(y) is +w: it raises D, i.e. looks more like the prior.
  disc = dim.PriorDiscriminator(())   # one Dense layer: D(v) = w.v + b
  w = jnp.array([1.0, -2.0, 0.5, 0.0])
  disc_params = {'mlp': {'dense_0': {'kernel': w[:, None], 'bias': jnp.zeros(1)}}}
  v = jax.random.uniform(jax.random.PRNGKey(0), (5, 4))
  grad = jax.grad(lambda u: dim.generator_loss(disc.apply(
      {'params': disc_params}, u)))(v)
  direction = -np.asarray(grad)
  for row in direction:
    np.testing.assert_allclose(row / np.linalg.norm(row),
                               np.asarray(w) / np.linalg.norm(w), atol=1e-6)


def _only(player, rate):
  """An optimiser that trains one player and freezes the other."""
  return optax.multi_transform(
      {'train': optax.adam(rate), 'freeze': optax.set_to_zero()},
      lambda p: {k: jax.tree.map(lambda _: 'train' if k == player else 'freeze', v)
                 for k, v in p.items()})


@pytest.mark.slow
def test_prior_term_moves_y_toward_what_d_calls_prior():
  # 1) Train D alone: it learns to tell sigma(Y) from U[0,1]^d. 2) Train the
  # encoder alone on the prior term: D's logits on sigma(Y) rise and D
  # classifies fewer encoded points as encoded.
  model, disc = _small_model(), dim.PriorDiscriminator((32,))
  x = jax.random.uniform(jax.random.PRNGKey(7), (64, SIDE, SIDE))
  config = _config(gamma=1.0, beta=1e-9)

  def run(state, tx, steps, offset):
    update = jax.jit(lambda s, k: dim.make_update(model, disc, config)(
        s, {'x': x}, k, tx))
    for i in range(steps):
      state, metrics = update(state, jax.random.PRNGKey(offset + i))
    return state, metrics

  @jax.jit
  def d_on_encoded(state):
    y = model.apply({'params': state.params['model']}, x)['y']
    return disc.apply({'params': state.params['disc']}, jax.nn.sigmoid(y))

  tx_d = _only('disc', 1e-2)
  state = _state(model, disc, tx_d)
  state, metrics = run(state, tx_d, 100, 0)
  assert metrics['discriminator_accuracy'] > 0.9
  before = d_on_encoded(state)
  tx_e = _only('model', 1e-2)
  state = state.replace(opt_state=tx_e.init(state.params))
  frozen_disc = state.params['disc']
  state, _ = run(state, tx_e, 30, 1000)
  for a, b in zip(jax.tree.leaves(frozen_disc), jax.tree.leaves(state.params['disc'])):
    np.testing.assert_array_equal(a, b)   # D was frozen: only the encoder moved
  after = d_on_encoded(state)
  assert float(jnp.mean(after)) > float(jnp.mean(before)) + 1.0
  assert float(jnp.mean(after < 0)) < float(jnp.mean(before < 0))


class _Generator(nn.Module):
  """A stand-in 'encoder': an MLP of Gaussian inputs, so that sigma(Y) can
  match U[0,1]^d exactly (an image encoder of a few images cannot)."""
  features: int = 8

  @nn.compact
  def __call__(self, x, train=True):
    y = encoders.MLP((64, 64, self.features))(x.reshape(x.shape[0], -1))
    return {'local': x[..., None], 'y': y}


@pytest.mark.slow
def test_prior_game_with_r1_moves_y_toward_the_prior():
  # The whole simultaneous game of make_update (both players, one optimiser,
  # R1 on D), MI term switched off: sigma(Y) must end much nearer U[0,1]^8
  # than at initialisation, by the marginal W1 and the joint energy distance.
  # (Without R1 this game diverges: W1 0.20 -> 0.37, energy 0.30 -> 1.2.)
  model = dim.DeepInfoMax(_Generator(), critic_units=4)
  disc = dim.PriorDiscriminator((128, 64))
  z = jax.random.normal(jax.random.PRNGKey(8), (4096, 2, 4))
  config = _config(gamma=1.0, beta=1e-9, gradient_penalty=1.0)
  tx = optax.adam(1e-3)
  params, stats = dim.init(model, disc, jax.random.PRNGKey(0), (2, 4), 8)
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                           opt_state=tx.init(params), aux=stats,
                           key=jax.random.PRNGKey(1))
  update = jax.jit(lambda s, k: dim.make_update(model, disc, config)(
      s, {'x': z[jax.random.permutation(k, 4096)[:64]]}, k, tx))

  def distances(state):
    enc = jax.nn.sigmoid(model.apply({'params': state.params['model']}, z)['y'])
    prior = dim.prior_sample(jax.random.PRNGKey(99), enc.shape)
    return (float(evaluation.wasserstein_to_uniform(enc)),
            float(evaluation.energy_distance(enc[:1000], prior[:1000])))

  w1_before, energy_before = distances(state)
  for i in range(600):
    state, _ = update(state, jax.random.PRNGKey(100 + i))
  w1_after, energy_after = distances(state)
  assert w1_after < 0.3 * w1_before, (w1_before, w1_after)
  assert energy_after < 0.1 * energy_before, (energy_before, energy_after)


def test_config_errors():
  with pytest.raises(ValueError, match='alpha > 0 .* or beta > 0'):
    dim.make_model(_config(alpha=0.0, beta=0.0))
  with pytest.raises(ValueError, match='gamma must be >= 0'):
    dim.make_model(_config(gamma=-1.0))


@pytest.mark.slow
def test_encode_features_batches():
  model = _small_model()
  disc = dim.PriorDiscriminator((4,))
  params, stats = dim.init(model, disc, jax.random.PRNGKey(0), (SIDE, SIDE), 6)
  x = jax.random.uniform(jax.random.PRNGKey(1), (7, SIDE, SIDE))
  feats = dim.encode_features(model, params['model'], stats, x, batch_size=3)
  direct = jax.jit(lambda p, v: model.apply(
      {'params': p}, v, method=dim.DeepInfoMax.features))(params['model'], x)
  assert feats['conv'].shape == (7, 2 * 2 * 8)
  for k in ('conv', 'fc', 'y'):
    np.testing.assert_allclose(feats[k], direct[k], rtol=1e-5, atol=1e-6)


def test_make_optimizer_scales_only_the_discriminator():
  tx = dim.make_optimizer(1e-3, disc_learning_rate_scale=10.0)
  params = {'model': {'w': jnp.ones(3)}, 'disc': {'w': jnp.ones(2)}}
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step is -lr * sign(g) (bias-corrected moments).
  np.testing.assert_allclose(updates['model']['w'], -1e-3, rtol=1e-4)
  np.testing.assert_allclose(updates['disc']['w'], -1e-2, rtol=1e-4)
  with pytest.raises(ValueError, match='disc_learning_rate_scale must be > 0'):
    dim.make_optimizer(1e-3, 0.0)
