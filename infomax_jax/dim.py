"""Deep InfoMax (Hjelm et al., ICLR 2019): global and local MI, prior matching.

An encoder E maps an image x to an M×M local feature map C(x) and a global
vector Y = E(x) (``encoders.DIMEncoder``). DIM maximises

    α Î(Y; C(x))  +  β (1/M²) Σ_l Î(Y; C_l(x))  −  γ (prior-matching loss)

where Î is a lower bound (or the JSD proxy) of ``infomax_jax.bounds`` on
critic scores:

* local DIM: every (image i, location l) against every global vector j,
  ``scores[i, j, l] = <φ(C_l(x_i)), ψ(Y_j)>``, a (K, K, M²) array built with
  ``vmap`` over the locations and over the negative pairs; the bounds average
  the per-location (K, K) estimates (Eq. 6 of the paper);
* global DIM: ``scores[i, j] = <φ_G(C(x_i)), ψ_G(Y_j)>`` with φ_G an
  encoder of the whole (flattened) map;
* φ, ψ are "encode-and-dot" networks: a 1×1 convolution with a residual
  linear shortcut and LayerNorm (``ResidualProjection``); a 1×1 conv on the
  map is a Dense layer over its channel axis.
* prior matching: a discriminator D tells samples of the prior V ~ U[0,1]^d
  from σ(Y). It is a true two-player game: D minimises
  ``discriminator_loss`` (plus an optional R1 gradient penalty), the encoder
  minimises the non-saturating ``generator_loss``; ``update`` differentiates
  each loss with respect to its own player's parameters only, so the two
  players cannot share a loss by mistake.

Scores are scaled by ``1/sqrt(units)`` (the official code uses raw dot
products of LayerNorm'ed 2048-d codes, i.e. logits of order ±45 at
initialisation); the LayerNorm gains can learn any scale, so the family of
critics is the same.
"""

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from infomax_jax import bounds
from infomax_jax import data as data_lib
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import registry
from infomax_jax import train as train_lib

Array = jax.Array
PyTree = Any

# The objectives of Table 1, by ``bounds.REGISTRY`` name (the (K, K, L) form
# averages over locations).
ESTIMATORS = ('infonce', 'jsd', 'dv')


def _shortcut_init(key, shape, dtype=jnp.float32):
  """Identity-like kernel (C_in, U): the shortcut starts as a copy of the input.

  Where U < C_in (a wide flattened map) it falls back to LeCun normal.
  """
  c_in, units = shape
  if units < c_in:
    return nn.initializers.lecun_normal()(key, shape, dtype)
  return jnp.eye(c_in, units, dtype=dtype)


class ResidualProjection(nn.Module):
  """Encode network of an encode-and-dot critic: LN(W2 relu(W1 x) + S x).

  Acts on the last axis, so on a (B, M, M, C) map it is the paper's 1×1
  convolution network, applied at every location.

  Attributes:
    units: output width.
  """
  units: int = 2048

  @nn.compact
  def __call__(self, x: Array) -> Array:
    h = nn.Dense(self.units, name='hidden')(x)
    h = nn.Dense(self.units, name='out')(nn.relu(h))
    shortcut = nn.Dense(self.units, use_bias=False, kernel_init=_shortcut_init,
                        name='shortcut')(x)
    return nn.LayerNorm(name='layer_norm')(h + shortcut)


def local_scores(local_codes: Array, global_codes: Array) -> Array:
  """(K, K, L) scores ``s[i, j, l] = <local_codes[i, l], global_codes[j]>``.

  Args:
    local_codes: (K, L, U) encoded local features, L = M² locations.
    global_codes: (K, U) encoded global vectors.

  Returns:
    (K, K, L): every (image, location) against every global vector; the
    diagonal ``s[i, i, :]`` holds the positive pairs.
  """
  if local_codes.ndim != 3 or global_codes.ndim != 2 or (
      local_codes.shape[0] != global_codes.shape[0]
      or local_codes.shape[2] != global_codes.shape[1]):
    raise ValueError(
        f'local_scores expects local codes (K, L, U) and global codes (K, U), '
        f'got shapes {local_codes.shape} and {global_codes.shape}')
  pair = jnp.dot                                             # one (i, j, l)
  negatives = jax.vmap(pair, in_axes=(None, 0))              # over j
  images = jax.vmap(negatives, in_axes=(0, None))            # over i
  locations = jax.vmap(images, in_axes=(1, None), out_axes=2)  # over l
  return locations(local_codes, global_codes)


def global_scores(map_codes: Array, global_codes: Array) -> Array:
  """(K, K) scores ``s[i, j] = <map_codes[i], global_codes[j]>``."""
  if map_codes.ndim != 2 or map_codes.shape != global_codes.shape:
    raise ValueError(
        f'global_scores expects two (K, U) code arrays, got shapes '
        f'{map_codes.shape} and {global_codes.shape}')
  return jax.vmap(jax.vmap(jnp.dot, in_axes=(None, 0)), in_axes=(0, None))(
      map_codes, global_codes)


class DeepInfoMax(nn.Module):
  """Encoder plus the encode-and-dot critics of the objectives in use.

  Attributes:
    encoder: a module returning ``{'local', 'conv', 'fc', 'y'}``
      (``encoders.DIMEncoder``).
    critic_units: width U of the encode-and-dot codes.
    use_global: build the global critic (α > 0).
    use_local: build the local critic (β > 0).
  """
  encoder: nn.Module
  critic_units: int = 2048
  use_global: bool = False
  use_local: bool = True

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> dict[str, Array]:
    """Features plus 'global_scores' (K, K) and/or 'local_scores' (K, K, M²)."""
    out = dict(self.encoder(x, train=train))
    scale = 1.0 / math.sqrt(self.critic_units)
    local = out['local']
    if self.use_local:
      codes = ResidualProjection(self.critic_units, name='local_phi')(local)
      codes = codes.reshape(codes.shape[0], -1, codes.shape[-1])
      y_codes = ResidualProjection(self.critic_units, name='local_psi')(out['y'])
      out['local_scores'] = scale * local_scores(codes, y_codes)
    if self.use_global:
      flat = local.reshape(local.shape[0], -1)
      codes = ResidualProjection(self.critic_units, name='global_phi')(flat)
      y_codes = ResidualProjection(self.critic_units, name='global_psi')(out['y'])
      out['global_scores'] = scale * global_scores(codes, y_codes)
    return out

  def features(self, x: Array) -> dict[str, Array]:
    """Probe features (inference mode): flattened 'conv', 'fc' and 'y'."""
    out = self.encoder(x, train=False)
    return {'conv': out['conv'].reshape(out['conv'].shape[0], -1),
            'fc': out['fc'], 'y': out['y']}


class PriorDiscriminator(nn.Module):
  """D(v): logit that v was drawn from the prior (MLP 1000-200-1, as the paper)."""
  hidden: tuple[int, ...] = (1000, 200)

  @nn.compact
  def __call__(self, v: Array) -> Array:
    return encoders.MLP(tuple(self.hidden) + (1,), name='mlp')(v)[..., 0]


def prior_sample(key: Array, shape: tuple[int, ...]) -> Array:
  """Samples of the prior U[0, 1]^d (compared with σ(Y))."""
  return jax.random.uniform(key, shape)


def discriminator_loss(d_prior: Array, d_encoded: Array) -> Array:
  """D's cross-entropy: −E_V[log σ(D(v))] − E_Y[log(1 − σ(D(σ(y))))]."""
  return jnp.mean(jax.nn.softplus(-d_prior)) + jnp.mean(jax.nn.softplus(d_encoded))


def generator_loss(d_encoded: Array) -> Array:
  """The encoder's non-saturating loss −E_Y[log σ(D(σ(y)))]: pass as prior."""
  return jnp.mean(jax.nn.softplus(-d_encoded))


def gradient_penalty(discriminator: Callable[[Array], Array], v: Array) -> Array:
  """R1 penalty E_v ||∇_v D(v)||² on prior samples (Mescheder et al. 2018)."""
  grads = jax.vmap(jax.grad(lambda u: discriminator(u[None])[0]))(v)
  return jnp.mean(jnp.sum(grads ** 2, axis=-1))


def discriminator_accuracy(d_prior: Array, d_encoded: Array) -> Array:
  """Fraction of prior samples with D > 0 and encoded samples with D < 0."""
  return 0.5 * (jnp.mean(d_prior > 0) + jnp.mean(d_encoded < 0))


def mi_terms(out: dict[str, Array], *, estimator: str, alpha: float,
             beta: float) -> tuple[Array, dict[str, Array]]:
  """α Î_G + β Î_L on the model's scores, and metrics (the terms, plus InfoNCE).

  InfoNCE values are reported beside DV/JSD, which are not MI estimates.
  """
  registry.lookup(dict.fromkeys(ESTIMATORS), estimator, 'DIM estimator')
  bound = bounds.get(estimator, scores_only=True)
  total, metrics = jnp.zeros(()), {}
  for name, weight in (('global', alpha), ('local', beta)):
    if weight:
      scores = out[f'{name}_scores']
      value = bound(scores).objective
      total = total + weight * value
      metrics[f'{estimator}_{name}'] = value
      if estimator != 'infonce':
        metrics[f'infonce_{name}'] = bounds.infonce(jax.lax.stop_gradient(scores))
  return total, metrics


def _check_weights(config) -> None:
  for name in ('alpha', 'beta', 'gamma'):
    if config[name] < 0:
      raise ValueError(f'config.{name} must be >= 0, got {config[name]}')
  if not (config.alpha or config.beta):
    raise ValueError('DIM needs alpha > 0 (global) or beta > 0 (local); got '
                     f'alpha={config.alpha}, beta={config.beta}')


def make_model(config: ml_collections.ConfigDict) -> DeepInfoMax:
  """The ``DeepInfoMax`` module of ``config`` (encoder kwargs, critic units)."""
  _check_weights(config)
  kwargs = dict(config.get('encoder_kwargs', {}) or {})
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
  encoder = encoders.make_encoder(config.get('encoder', 'dim_conv'), **kwargs)
  return DeepInfoMax(encoder, critic_units=config.critic_units,
                     use_global=bool(config.alpha), use_local=bool(config.beta))


def init(model: DeepInfoMax, discriminator: PriorDiscriminator, key: Array,
         image_shape: tuple[int, ...], num_y: int) -> tuple[PyTree, PyTree]:
  """(params, aux): ``{'model', 'disc'}`` parameters and the batch statistics."""
  k_model, k_disc = jax.random.split(key)
  variables = model.init(k_model, jnp.zeros((2,) + tuple(image_shape)), train=False)
  params = {'model': variables['params'],
            'disc': discriminator.init(k_disc, jnp.zeros((2, num_y)))['params']}
  return params, variables.get('batch_stats', {})


def make_update(model: DeepInfoMax, discriminator: PriorDiscriminator,
                config: ml_collections.ConfigDict):
  """The ``train.Task.update`` of DIM: one simultaneous step of both players.

  The encoder and critics minimise ``−(α Î_G + β Î_L) + γ generator_loss``;
  the discriminator minimises ``discriminator_loss + λ R1`` on the same
  (stop-gradient) σ(Y). Each loss is differentiated with respect to its own
  player's parameters only (``params['model']`` and ``params['disc']``), and
  the two gradient trees are applied by one optimiser (a per-parameter
  optimiser such as Adam then equals one optimiser per player).

  Config fields: estimator, alpha, beta, gamma, gradient_penalty.
  """
  _check_weights(config)
  gamma, penalty = config.gamma, config.get('gradient_penalty', 0.0)

  def update(state, batch, key, tx):
    params, stats = state.params, state.aux
    disc = lambda p, v: discriminator.apply({'params': p}, v)

    def encoder_loss(model_params):
      variables = {'params': model_params}
      if stats:
        variables['batch_stats'] = stats
        out, updated = model.apply(variables, batch['x'], train=True,
                                   mutable=['batch_stats'])
      else:
        out, updated = model.apply(variables, batch['x'], train=True), {}
      mi, metrics = mi_terms(out, estimator=config.estimator,
                             alpha=config.alpha, beta=config.beta)
      loss = -mi
      encoded = jax.nn.sigmoid(out['y'])
      if gamma:
        gen = generator_loss(disc(params['disc'], encoded))
        loss = loss + gamma * gen
        metrics['generator_loss'] = gen
      return loss, (metrics, encoded, updated.get('batch_stats', stats))

    (loss, (metrics, encoded, stats)), model_grads = jax.value_and_grad(
        encoder_loss, has_aux=True)(params['model'])
    encoded = jax.lax.stop_gradient(encoded)
    if gamma:
      prior = prior_sample(key, encoded.shape)

      def disc_loss(disc_params):
        d_prior, d_encoded = disc(disc_params, prior), disc(disc_params, encoded)
        value = discriminator_loss(d_prior, d_encoded)
        if penalty:
          value = value + penalty * gradient_penalty(
              lambda v: disc(disc_params, v), prior)
        return value, discriminator_accuracy(d_prior, d_encoded)

      (d_loss, d_acc), disc_grads = jax.value_and_grad(
          disc_loss, has_aux=True)(params['disc'])
      metrics.update(discriminator_loss=d_loss, discriminator_accuracy=d_acc)
    else:   # no prior term: D is not trained
      disc_grads = jax.tree.map(jnp.zeros_like, params['disc'])
    grads = {'model': model_grads, 'disc': disc_grads}
    updates, opt_state = tx.update(grads, state.opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {'loss': loss, 'w1_prior': evaluation.wasserstein_to_uniform(encoded),
               **metrics}
    return state.replace(params=params, opt_state=opt_state, aux=stats), metrics

  return update


@functools.partial(jax.jit, static_argnums=0)
def _features(model: DeepInfoMax, variables: PyTree, x: Array) -> dict[str, Array]:
  return model.apply(variables, x, method=DeepInfoMax.features)


def make_optimizer(learning_rate: float, disc_learning_rate_scale: float = 1.0
                   ) -> optax.GradientTransformation:
  """Adam for both players; D's step size scaled by ``disc_learning_rate_scale``.

  A faster discriminator (two time-scale updates, Heusel et al. 2017) keeps D
  close to its best response, so the encoder is pushed toward the prior
  rather than just away from a lagging D.
  """
  if disc_learning_rate_scale <= 0:
    raise ValueError(f'disc_learning_rate_scale must be > 0, got '
                     f'{disc_learning_rate_scale}')
  return optax.multi_transform(
      {'model': optax.adam(learning_rate),
       'disc': optax.adam(learning_rate * disc_learning_rate_scale)},
      lambda params: {k: jax.tree.map(lambda _: k, v) for k, v in params.items()})


def encode_features(model: DeepInfoMax, params: PyTree, stats: PyTree,
                    images: Array, batch_size: int = 500) -> dict[str, Array]:
  """Probe features of ``images`` (inference mode), in jitted batches
  (``evaluation.map_batches``)."""
  variables = {'params': params, **({'batch_stats': stats} if stats else {})}
  return evaluation.map_batches(lambda x: _features(model, variables, x),
                                images, batch_size)


def _to_float(images: Array) -> Array:
  return images.astype(jnp.float32) / 255.0


def make_task(config: ml_collections.ConfigDict, train_data, test_data):
  """The ``train.Task`` of one DIM run on (uint8 images, labels) splits.

  Every evaluation fits a linear probe (L-BFGS) and a one-hidden-layer probe
  (Adam) on the conv / fc / Y features of the first
  ``config.probe_train_examples`` train images, reports test accuracy, the
  distances of σ(Y) to the prior (``evaluation.distances_to_uniform``), the
  trained discriminator's accuracy (γ > 0) and the objective's test InfoNCE
  on ``eval_batches`` fixed batches (``evaluation.eval_keys``).
  """
  model = make_model(config)
  discriminator = PriorDiscriminator(tuple(config.discriminator_hidden))
  images, labels = train_data
  test_images, test_labels = jnp.asarray(test_data[0]), test_data[1]
  n_probe = config.probe_train_examples or images.shape[0]
  probe_images, probe_labels = jnp.asarray(images[:n_probe]), labels[:n_probe]

  def init_fn(key):
    return init(model, discriminator, key, images.shape[1:],
                config.encoder_kwargs.get('features', 64))

  def sample(data, key):
    idx = data_lib.batch_indices(key, data['images'].shape[0], config.batch_size)
    return {'x': _to_float(data['images'][idx])}

  @jax.jit
  def batch_infonce(params, stats, key):
    variables = {'params': params['model'], **({'batch_stats': stats} if stats else {})}
    idx = data_lib.batch_indices(key, test_images.shape[0], config.batch_size)
    out = model.apply(variables, _to_float(test_images[idx]), train=False)
    terms = mi_terms(out, estimator='infonce', alpha=config.alpha, beta=config.beta)[0]
    return terms / (config.alpha + config.beta)

  def evaluate(params, stats, step):
    if step == 0 and config.num_steps > 0 and not config.eval_at_init:
      return {}
    encode = lambda x: encode_features(model, params['model'], stats, _to_float(x))
    train_feats, test_feats = encode(probe_images), encode(test_images)
    record = {}
    for name in ('conv', 'fc', 'y'):
      args = (train_feats[name], probe_labels, test_feats[name], test_labels)
      record[f'{name}_linear'] = evaluation.linear_probe(
          *args, steps=config.probe_steps)['accuracy']
      record[f'{name}_mlp'] = evaluation.mlp_probe(
          *args, hidden_size=config.mlp_probe_hidden,
          steps=config.mlp_probe_steps, batch_size=config.mlp_probe_batch,
          learning_rate=config.mlp_probe_learning_rate)['accuracy']
    encoded = jax.nn.sigmoid(test_feats['y'])
    record.update(evaluation.distances_to_uniform(
        jax.nn.sigmoid(train_feats['y']), encoded, seed=config.seed,
        energy_examples=config.get('energy_examples', 2000),
        hidden_size=config.mlp_probe_hidden, steps=config.mlp_probe_steps,
        batch_size=config.mlp_probe_batch,
        learning_rate=config.mlp_probe_learning_rate))
    if config.gamma:
      prior = prior_sample(evaluation.eval_key(config.seed, 'disc_prior'),
                           encoded.shape)
      d = lambda v: discriminator.apply({'params': params['disc']}, v)
      record['discriminator_accuracy'] = discriminator_accuracy(d(prior), d(encoded))
    # A host loop: XLA:CPU convolutions are slow inside lax.map.
    keys = evaluation.eval_keys(config.seed, 'infonce_test', config.eval_batches)
    record['infonce_test'] = float(np.mean([batch_infonce(params, stats, k)
                                            for k in keys]))
    return record

  scale = config.get('disc_learning_rate_scale', 1.0)
  return train_lib.Task(
      init=init_fn, sample=sample, data={'images': jnp.asarray(images)},
      evaluate=evaluate, update=make_update(model, discriminator, config),
      optimizer=None if scale == 1.0 else make_optimizer(config.learning_rate, scale))
