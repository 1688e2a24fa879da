"""Flax encoders: MLP, residual MLP, ConvNet, the DIM conv encoder, a registry.

The bijective RealNVP encoder lives in ``infomax_jax.flows`` and is exposed
here under the registry name 'realnvp'. Architectures follow Tschannen et al.
(ICLR 2020): the residual MLP of the conditioning experiment (Fig. 2) and the
ConvNet of the target-MI experiment (Fig. 4).
"""

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from infomax_jax import registry
from infomax_jax.flows import RealNVP

Array = jax.Array
Activation = Callable[[Array], Array]


class MLP(nn.Module):
  """Multi-layer perceptron h_{k+1} = act(W_k h_k + b_k).

  The activation follows every layer but the last, unless
  ``final_activation`` is True.

  Attributes:
    features: output width of each Dense layer; the last is the output dim.
    activation: elementwise non-linearity.
    final_activation: whether to apply ``activation`` after the last layer.
  """
  features: Sequence[int]
  activation: Activation = nn.relu
  final_activation: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps (..., d_in) to (..., features[-1])."""
    if not self.features:
      raise ValueError('MLP needs at least one layer, got features=()')
    for i, width in enumerate(self.features):
      x = nn.Dense(width, name=f'dense_{i}')(x)
      if i < len(self.features) - 1 or self.final_activation:
        x = self.activation(x)
    return x


class ResidualMLP(nn.Module):
  """Residual MLP g = B_L ∘ ... ∘ B_1 with blocks B(x) = x + act(W x + b).

  W starts from N(0, init_std^2) and b from zero, so each residual branch is
  ≈ 0 and g ≈ identity at init (Tschannen et al. 2020, Fig. 2). Each block is
  invertible while Lip(act(W x + b)) < 1, i.e. ||W||_2 < 1 for ReLU, but
  training is free to leave that regime, so g can become non-invertible and its
  Jacobian ill-conditioned: what the conditioning experiment tracks.

  Attributes:
    width: feature dimension; the input's last dim must equal it.
    num_layers: number of residual blocks.
    init_std: std of the normal init of the residual kernels.
    activation: elementwise non-linearity of the residual branch.
  """
  width: int
  num_layers: int = 5
  init_std: float = 1e-4
  activation: Activation = nn.relu

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps (..., width) to (..., width)."""
    if x.shape[-1] != self.width:
      raise ValueError(
          f'ResidualMLP expects input of shape (..., {self.width}), got '
          f'shape {x.shape}')
    kernel_init = nn.initializers.normal(self.init_std)
    for i in range(self.num_layers):
      x = x + self.activation(
          nn.Dense(self.width, kernel_init=kernel_init, name=f'block_{i}')(x))
    return x


class ConvNet(nn.Module):
  """Small ConvNet of Tschannen et al. (2020, Fig. 4) on 14×28 half images.

  (B, 14, 28, 1) -> conv 64 (5×5, stride 2) -> ReLU -> conv 128 (5×5,
  stride 2) -> ReLU -> LayerNorm -> global average pool -> Dense(features).

  Attributes:
    features: output dimension.
    image_shape: (H, W, C) of one input image; flat inputs (B, H*W*C) are
      reshaped to it.
  """
  features: int = 100
  image_shape: tuple[int, int, int] = (14, 28, 1)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Maps (B, H*W*C) or (B, H, W, C) to (B, features)."""
    h, w, c = self.image_shape
    if x.ndim == 2 and x.shape[-1] == h * w * c:
      x = x.reshape(x.shape[0], h, w, c)
    elif x.ndim != 4 or x.shape[1:] != (h, w, c):
      raise ValueError(
          f'ConvNet expects input of shape (B, {h * w * c}) or (B, {h}, {w}, '
          f'{c}), got shape {x.shape}')
    x = nn.relu(nn.Conv(64, (5, 5), strides=(2, 2), name='conv_0')(x))
    x = nn.relu(nn.Conv(128, (5, 5), strides=(2, 2), name='conv_1')(x))
    x = nn.LayerNorm(name='layer_norm')(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.features, name='out')(x)


NORMS = ('batch', 'layer', 'none')


class DIMEncoder(nn.Module):
  """Deep InfoMax convolutional encoder (Hjelm et al. 2019, App. A.2).

  conv 64 (4×4, s2) -> conv 128 (4×4, s2) -> conv 256 (4×4, s2) -> FC 1024 ->
  Y (``features``, linear). ReLU after every layer but Y; ``norm`` after
  every layer but the first conv and Y (the paper's batch norm by default).
  The output of conv ``local_layer`` (default the second) is the M×M local
  feature map: 8×8×128 on 32×32 inputs. Images smaller than ``input_size``
  (MNIST's 28×28) are zero-padded symmetrically to it, so every data set
  gives the paper's 8×8 map; 'SAME' padding halves each side exactly, like
  the paper's padding 1.

  With ``norm='batch'`` the module keeps running statistics in the
  ``batch_stats`` collection: call it with ``train=True`` and
  ``mutable=['batch_stats']`` while training, ``train=False`` to use the
  running averages (probes). 'layer' (LayerNorm) is a stateless substitute:
  it does not mix examples of a batch, so the contrastive negatives cannot
  leak through the normaliser.

  Attributes:
    features: dimension of Y.
    channels: output channels of the conv layers.
    fc_units: width of the fully connected layer.
    local_layer: index of the conv layer whose output is the local map.
    norm: one of ``NORMS``.
    input_size: side the images are padded to.
  """
  features: int = 64
  channels: Sequence[int] = (64, 128, 256)
  fc_units: int = 1024
  local_layer: int = 1
  norm: str = 'batch'
  input_size: int = 32

  def _norm(self, name: str, train: bool):
    if self.norm == 'batch':
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
    if self.norm == 'layer':
      return nn.LayerNorm(name=name)
    return lambda x: x

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> dict[str, Array]:
    """Encodes (B, H, W) or (B, H, W, C) float images.

    Returns:
      ``{'local': (B, M, M, channels[local_layer]), 'conv': last conv map
      (B, m, m, channels[-1]), 'fc': (B, fc_units), 'y': (B, features)}``.
    """
    if self.norm not in NORMS:
      raise ValueError(f'DIMEncoder: unknown norm {self.norm!r}; valid: {NORMS}')
    if not 0 <= self.local_layer < len(self.channels):
      raise ValueError(
          f'DIMEncoder: local_layer must index one of the {len(self.channels)} '
          f'conv layers, got {self.local_layer}')
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[1] > self.input_size:
      raise ValueError(
          f'DIMEncoder expects square images (B, H, H[, C]) with H <= '
          f'{self.input_size}, got shape {x.shape}')
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f'DIMEncoder expects float images (e.g. pixels / 255), '
                      f'got dtype {x.dtype}')
    pad = self.input_size - x.shape[1]
    if pad:
      x = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2),
                      (pad // 2, pad - pad // 2), (0, 0)))
    out = {}
    for i, width in enumerate(self.channels):
      x = nn.Conv(width, (4, 4), strides=(2, 2), padding='SAME',
                  name=f'conv_{i}')(x)
      if i > 0:
        x = self._norm(f'norm_conv_{i}', train)(x)
      x = nn.relu(x)
      if i == self.local_layer:
        out['local'] = x
    out['conv'] = x
    x = nn.Dense(self.fc_units, name='fc')(x.reshape(x.shape[0], -1))
    out['fc'] = x = nn.relu(self._norm('norm_fc', train)(x))
    out['y'] = nn.Dense(self.features, name='y')(x)
    return out


ENCODERS: dict[str, type[nn.Module]] = {
    'dim_conv': DIMEncoder,
    'mlp': MLP,
    'residual_mlp': ResidualMLP,
    'convnet': ConvNet,
    'realnvp': RealNVP,
}


def make_encoder(name: str, **kwargs: Any) -> nn.Module:
  """Builds the encoder registered under ``name`` with ``kwargs``.

  Args:
    name: one of 'mlp', 'residual_mlp', 'convnet', 'realnvp', 'dim_conv'.
    **kwargs: the module's fields, e.g. ``features=(512, 100)`` for 'mlp'.

  Returns:
    The (unbound) Flax module.

  Raises:
    ValueError: unknown ``name`` (the message lists the valid ones).
  """
  return registry.lookup(ENCODERS, name, 'encoder')(**kwargs)
