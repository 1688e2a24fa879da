"""Critics: Flax modules that turn batches (x, y) into K x K score matrices.

``critic(x, y)[i, j] = f(x_i, y_j)`` with x: (K, d_x), y: (K, d_y). The bounds of
``infomax_jax.bounds`` take these scores. Critics are chosen by name through
``make_critic`` (``config.critic = 'bilinear'``).
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax

from infomax_jax import registry
from infomax_jax.encoders import MLP

Array = jax.Array


def _check_pair(x: Array, y: Array, name: str) -> None:
  if x.ndim != 2 or y.ndim != 2:
    raise ValueError(f'{name}: x and y must be 2-D batches (K, d), got shapes '
                     f'{x.shape} and {y.shape}')
  if x.shape[0] != y.shape[0]:
    raise ValueError(f'{name}: x and y must hold the same number of samples K, '
                     f'got {x.shape[0]} and {y.shape[0]}')


class InnerProduct(nn.Module):
  """f(x, y) = <x, y> / temperature (no parameters)."""
  temperature: float = 1.0

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    _check_pair(x, y, 'InnerProduct')
    if x.shape[1] != y.shape[1]:
      raise ValueError(f'InnerProduct: x and y need the same dimension, got '
                       f'{x.shape[1]} and {y.shape[1]}')
    return x @ y.T / self.temperature


class Bilinear(nn.Module):
  """f(x, y) = x^T W y with a learned W of shape (d_x, d_y) (Tschannen et al.)."""
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    _check_pair(x, y, 'Bilinear')
    w = self.param('kernel', self.kernel_init, (x.shape[1], y.shape[1]))
    return x @ (w @ y.T)


class Separable(nn.Module):
  """f(x, y) = phi_1(x)^T phi_2(y) with two MLPs (Poole et al. 2019).

  Attributes:
    hidden: hidden widths of each MLP (ReLU).
    embed_dim: output width of each MLP (the dimension of the dot product).
  """
  hidden: Sequence[int] = (256, 256)
  embed_dim: int = 32
  activation: Callable[[Array], Array] = nn.relu

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    _check_pair(x, y, 'Separable')
    features = (*self.hidden, self.embed_dim)
    gx = MLP(features, self.activation, name='phi_x')(x)
    gy = MLP(features, self.activation, name='phi_y')(y)
    return gx @ gy.T


class Concat(nn.Module):
  """f(x, y) = phi([x, y]): one MLP on every one of the K x K pairs.

  The first layer on a concatenation is W [x; y] + b = W_x x + W_y y + b, so it
  is computed once per row and once per column and broadcast to the K x K grid
  (exact, and K times cheaper than concatenating K^2 pairs); the rest of the
  MLP is then applied to every pair at once (a vmap over pairs, as one batched
  matmul on the (K, K, hidden) array).

  Attributes:
    hidden: hidden widths (ReLU); the output is one score per pair.
  """
  hidden: Sequence[int] = (256, 256)
  activation: Callable[[Array], Array] = nn.relu

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    _check_pair(x, y, 'Concat')
    if not self.hidden:
      raise ValueError('Concat: hidden must name at least one layer width')
    # The first layer's params are those of a Dense(hidden[0]) on [x, y].
    kernel = self.param('kernel_0', nn.initializers.lecun_normal(),
                        (x.shape[1] + y.shape[1], self.hidden[0]))
    bias = self.param('bias_0', nn.initializers.zeros, (self.hidden[0],))
    hx = x @ kernel[:x.shape[1]]
    hy = y @ kernel[x.shape[1]:] + bias
    h = self.activation(hx[:, None, :] + hy[None, :, :])       # (K, K, H)
    h = MLP((*self.hidden[1:], 1), self.activation, name='tail')(h)
    return h[..., 0]


CRITICS = {
    'bilinear': Bilinear,
    'separable': Separable,
    'concat': Concat,
    'inner_product': InnerProduct,
}


def make_critic(name: str, **kwargs) -> nn.Module:
  """Builds the critic named ``name`` (one of ``CRITICS``) with ``kwargs``.

  Args:
    name: 'bilinear', 'separable', 'concat' or 'inner_product'.
    **kwargs: the module's fields (e.g. ``hidden=(256, 256), embed_dim=32``).

  Returns:
    An unbound Flax module ``critic(x, y) -> (K, K)`` scores.
  """
  return registry.lookup(CRITICS, name, 'critic')(**kwargs)
