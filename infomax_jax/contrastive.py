"""The cosine-similarity critic with a fixed or learned temperature (SimCLR, CLIP).

``Cosine`` gives dense (K, K) scores for ``infomax_jax.bounds`` and, through
``embeddings``, the pair whose inner product is the same critic, for the
streaming and sharded bounds of ``infomax_jax.bounds.streaming``.

References: Chen et al. 2020 (SimCLR); Radford et al. 2021 (CLIP, learned
temperature).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from infomax_jax.bounds import streaming

Array = jax.Array


class Temperature(nn.Module):
  """A temperature tau, fixed or learned (CLIP's parametrisation).

  The parameter is the log inverse temperature log(1/tau), initialised at
  log(1/init) and clipped so that tau >= ``minimum`` (CLIP: 0.07 and 0.01).

  Attributes:
    init: initial (or fixed) temperature.
    learned: whether tau is a parameter; if False it is the constant ``init``.
    minimum: smallest temperature the clipping allows.
  """
  init: float = 0.07
  learned: bool = True
  minimum: float = 0.01

  @nn.compact
  def __call__(self) -> Array:
    if not self.learned:
      return jnp.asarray(self.init, jnp.float32)
    log_scale = self.param('log_inverse_temperature', nn.initializers.constant(
        math.log(1.0 / self.init)), ())
    return jnp.exp(-jnp.minimum(log_scale, math.log(1.0 / self.minimum)))


class Cosine(nn.Module):
  """Cosine-similarity critic f(x, y) = cos(x, y) / tau (SimCLR, CLIP).

  ``__call__`` returns the dense (K, K) scores for ``infomax_jax.bounds``;
  ``embeddings`` returns the pair whose inner product is f, for the streaming
  and sharded bounds of ``bounds.streaming``. Both share the temperature parameter.

  Attributes:
    temperature: the fixed temperature, or the initial learned one.
    learn_temperature: learn tau (CLIP) instead of fixing it (SimCLR).
  """
  temperature: float = 0.1
  learn_temperature: bool = False

  def setup(self):
    self.tau = Temperature(self.temperature, self.learn_temperature)

  def embeddings(self, x: Array, y: Array) -> tuple[Array, Array]:
    return streaming.cosine_embeddings(x, y, self.tau())

  def __call__(self, x: Array, y: Array) -> Array:
    xs, ys = self.embeddings(x, y)
    return jnp.dot(xs, ys.T, preferred_element_type=jnp.float32)
