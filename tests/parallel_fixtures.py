"""Small models and tasks shared by test_parallel.py and its subprocess scripts."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import parallel
from infomax_jax import train
from infomax_jax.bounds import streaming

DIM = 4
BATCH = 64
RHO = 0.8


def gaussian_pairs(seed, k, dim=DIM, rho=RHO):
  """x ~ N(0, I), y = rho x + sqrt(1 - rho^2) eps: (k, dim) float32 each.

  numpy, not jax.random: compiling threefry costs seconds per shape on CPU.
  """
  rng = np.random.default_rng(seed)
  x, eps = rng.standard_normal((2, k, dim))
  return (jnp.asarray(x, jnp.float32),
          jnp.asarray(rho * x + np.sqrt(1.0 - rho**2) * eps, jnp.float32))


def _sample_gaussian_pairs(key, k, dim=DIM, rho=RHO):
  x, eps = jax.random.normal(key, (2, k, dim))
  return x, rho * x + jnp.sqrt(1.0 - rho**2) * eps


class EmbeddingCritic(nn.Module):
  """Separable critic <phi_x(x), phi_y(y)> exposing its embeddings."""
  hidden: int = 16
  embed_dim: int = 8

  def setup(self):
    self.phi_x = critics.MLP((self.hidden, self.embed_dim))
    self.phi_y = critics.MLP((self.hidden, self.embed_dim))

  def embed(self, x, y):
    return self.phi_x(x), self.phi_y(y)

  def __call__(self, x, y):
    ex, ey = self.embed(x, y)
    return ex @ ey.T


def flatten(tree) -> dict:
  """{'['params']['phi_x']...': array} for np.savez / comparisons."""
  return {jax.tree_util.keystr(p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def train_config(**overrides):
  config = ml_collections.ConfigDict(dict(
      seed=0, num_steps=4, batch_size=BATCH, learning_rate=0.1, log_every=2,
      eval_every=2, checkpoint_every=2,
      # SGD, not Adam: some gradients are exactly 0 in theory (a bias of phi_y
      # shifts a whole row of scores) and Adam's first step, g / (|g| + eps),
      # would turn their rounding noise into +-learning_rate.
      optimizer='sgd'))
  config.update(overrides)
  return config


def contrastive_task(loss_name: str, mesh) -> train.Task:
  """InfoNCE on Gaussian pairs; 'dense' (K x K scores) or 'ring' (shard_map)."""
  critic = EmbeddingCritic()

  @jax.jit          # one compilation instead of many eager ops
  def init(key):
    x = jnp.zeros((2, DIM))
    return critic.init(key, x, x), ()

  def sample(data, key):
    del data
    x, y = _sample_gaussian_pairs(key, BATCH)
    return {'x': x, 'y': y}

  if loss_name == 'dense':
    def estimate(ex, ey):
      return bounds.infonce(ex @ ey.T)
  elif loss_name == 'ring':
    estimate = parallel.batch_shard_map(functools.partial(
        streaming.infonce, axis_name=parallel.DATA_AXIS, collective='ring',
        block_size=3), mesh)
  else:
    raise ValueError(loss_name)

  def loss(params, aux, batch, key):
    del key
    ex, ey = critic.apply(params, batch['x'], batch['y'], method='embed')
    value = estimate(ex, ey)
    return -value, ({'infonce': value}, aux)

  return train.Task(init=init, sample=sample, loss=loss)
