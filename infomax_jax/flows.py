"""Bijective RealNVP encoders: coupling layers, fixed permutations, log-dets.

The invertible encoders of Tschannen et al. (ICLR 2020, "On Mutual Information
Maximization for Representation Learning", Sec. 3 / Fig. 1): a stack of
coupling layers (Dinh et al. 2015 "NICE", Dinh et al. 2017 "RealNVP") with a
fixed random permutation of the coordinates before each coupling. Since the
encoder is a bijection, I(g1(x); g2(y)) = I(x; y) for every parameter value.

Layout follows distrax ``MaskedCoupling``: ``forward_and_log_det`` and
``inverse_and_log_det`` return the log |det Jacobian| beside the output.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Valid values of ``RealNVP.coupling``.
COUPLINGS = ('additive', 'affine_softplus', 'affine_exp')

# softplus^{-1}(1) = log(e - 1): shifts the softplus scale to exactly 1 at a
# zero conditioner output, so a near-zero-initialised flow is near identity.
_SOFTPLUS_INV_ONE = float(np.log(np.expm1(1.0)))


def _check_coupling(coupling: str) -> None:
  if coupling not in COUPLINGS:
    raise ValueError(
        f'unknown coupling {coupling!r}; valid couplings are: '
        f'{", ".join(COUPLINGS)}')


@functools.lru_cache(maxsize=None)
def coupling_permutations(num_couplings: int, dim: int,
                          seed: int) -> np.ndarray:
  """The fixed permutations applied before each coupling layer.

  Drawn once with numpy from ``seed``, so they are constants of the model (not
  parameters, never trained) and identical for every ``init`` RNG.

  Args:
    num_couplings: number of coupling layers (one permutation each).
    dim: dimension d of the flow's input.
    seed: the permutation seed (``RealNVP.permutation_seed``).

  Returns:
    int32 array of shape (num_couplings, dim); row i is applied as
    ``x[..., perms[i]]`` before coupling i. Read-only (cached).
  """
  rng = np.random.default_rng(seed)
  perms = np.stack([rng.permutation(dim) for _ in range(num_couplings)])
  perms = perms.astype(np.int32)
  perms.setflags(write=False)
  return perms


class Coupling(nn.Module):
  """One coupling layer y1 = x1, y2 = x2 * s(x1) + t(x1).

  x is split into x1 = x[..., :d1] and x2 = x[..., d1:] with d1 = floor(d/2).
  The conditioner is an MLP (Dense + ReLU with widths ``hidden``, then a Dense
  output layer) mapping x1 to t (additive) or to (t, raw) (affine), with

    additive:         s = 1                         (NICE; log det = 0)
    affine_softplus:  s = softplus(raw + softplus^{-1}(1))   (s = 1 at raw = 0)
    affine_exp:       s = exp(tanh(raw))            (tanh bounds log s to
                                                     (-1, 1) per layer, which
                                                     keeps deep stacks stable)

  log |det dy/dx| = sum_j log s_j. The inverse is x2 = (y2 - t(y1)) / s(y1).

  Attributes:
    hidden: widths of the conditioner's hidden layers.
    coupling: one of ``COUPLINGS``.
    init_std: std of the normal init of every conditioner kernel (biases start
      at zero); small values make the layer start near the identity.
  """
  hidden: Sequence[int]
  coupling: str
  init_std: float

  @nn.compact
  def __call__(self, x: Array, inverse: bool = False) -> tuple[Array, Array]:
    """Applies the coupling (or its inverse) to a (..., d) array.

    Args:
      x: input of shape (..., d), d >= 2.
      inverse: if True, apply the inverse map.

    Returns:
      (output of shape (..., d), log |det Jacobian| of the applied map, shape
      (...)).
    """
    d = x.shape[-1]
    d1 = d // 2
    d2 = d - d1
    x1, x2 = x[..., :d1], x[..., d1:]
    kernel_init = nn.initializers.normal(self.init_std)
    h = x1
    for i, width in enumerate(self.hidden):
      h = nn.relu(nn.Dense(width, kernel_init=kernel_init,
                           name=f'hidden_{i}')(h))
    additive = self.coupling == 'additive'
    h = nn.Dense(d2 if additive else 2 * d2, kernel_init=kernel_init,
                 name='out')(h)
    if additive:
      shift = h
      y2 = x2 - shift if inverse else x2 + shift
      log_det = jnp.zeros(x.shape[:-1], dtype=y2.dtype)
      return jnp.concatenate([x1, y2], axis=-1), log_det
    shift, raw = h[..., :d2], h[..., d2:]
    if self.coupling == 'affine_softplus':
      scale = jax.nn.softplus(raw + _SOFTPLUS_INV_ONE)
      log_scale = jnp.log(scale)
    else:  # 'affine_exp'
      log_scale = jnp.tanh(raw)
      scale = jnp.exp(log_scale)
    if inverse:
      y2 = (x2 - shift) / scale
      log_det = -jnp.sum(log_scale, axis=-1)
    else:
      y2 = x2 * scale + shift
      log_det = jnp.sum(log_scale, axis=-1)
    return jnp.concatenate([x1, y2], axis=-1), log_det


class RealNVP(nn.Module):
  """Bijective RealNVP flow g = C_n ∘ P_n ∘ ... ∘ C_1 ∘ P_1 on R^d.

  P_i are fixed random permutations (``coupling_permutations``, drawn with
  numpy from ``permutation_seed``: constants, not parameters, not trained) and
  C_i are coupling layers (``Coupling``):

    y1 = x1,  y2 = x2 * s(x1) + t(x1),  x1 = x[:floor(d/2)], x2 = the rest,

  with s = 1 ('additive', NICE: volume preserving), s = softplus(raw +
  softplus^{-1}(1)) ('affine_softplus') or s = exp(tanh(raw)) ('affine_exp').
  log |det dg/dx| = sum over couplings of sum_j log s_j; the inverse undoes the
  couplings and permutations in reverse order, exactly (up to float rounding).

  All conditioner kernels start from N(0, init_std^2) and biases from zero.
  With the small default (1e-4, as in Tschannen et al. 2020, Fig. 1) t ≈ 0 and
  s ≈ 1 at init, so the flow starts near the permutation P_n ... P_1 of the
  identity.

  Inputs are a batch (B, d) or a single vector (d,), so that
  ``jax.jacfwd(lambda v: model.apply(params, v))(v)`` gives the (d, d)
  Jacobian. Use ``model.apply(params, y, method=model.inverse)`` etc. for the
  other methods.

  Attributes:
    num_couplings: number of coupling layers (the paper uses 30).
    hidden: widths of each conditioner MLP's hidden layers.
    coupling: one of 'additive', 'affine_softplus', 'affine_exp'.
    init_std: std of the normal init of all conditioner kernels.
    permutation_seed: numpy seed of the fixed permutations.
  """
  num_couplings: int
  hidden: Sequence[int] = (512, 512)
  coupling: str = 'additive'
  init_std: float = 1e-4
  permutation_seed: int = 0

  def setup(self) -> None:
    _check_coupling(self.coupling)
    if self.num_couplings < 1:
      raise ValueError(
          f'num_couplings must be >= 1, got {self.num_couplings}')
    self.couplings = [
        Coupling(hidden=tuple(self.hidden), coupling=self.coupling,
                 init_std=self.init_std, name=f'coupling_{i}')
        for i in range(self.num_couplings)
    ]

  @nn.nowrap
  def permutations(self, dim: int) -> np.ndarray:
    """Fixed (num_couplings, dim) permutations; row i precedes coupling i."""
    return coupling_permutations(self.num_couplings, dim,
                                 self.permutation_seed)

  @nn.nowrap
  def _check_input(self, x: Array) -> None:
    if x.ndim not in (1, 2):
      raise ValueError(
          f'RealNVP expects input of shape (batch, d) or (d,), got shape '
          f'{x.shape}')
    if x.shape[-1] < 2:
      raise ValueError(
          f'RealNVP needs d >= 2 to split into two halves, got d = '
          f'{x.shape[-1]} (input shape {x.shape})')
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(
          f'RealNVP expects a floating-point input, got dtype {x.dtype}')

  def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
    """Computes y = g(x) and log |det dg/dx|.

    Args:
      x: input of shape (B, d) or (d,).

    Returns:
      (y with x's shape, log_det of shape (B,) or ()).
    """
    self._check_input(x)
    perms = self.permutations(x.shape[-1])
    log_det = jnp.zeros(x.shape[:-1], dtype=x.dtype)
    for perm, coupling in zip(perms, self.couplings):
      x, ld = coupling(jnp.take(x, perm, axis=-1))
      log_det = log_det + ld
    return x, log_det

  def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
    """Computes x = g^{-1}(y) and log |det dg^{-1}/dy| = -log |det dg/dx|.

    Args:
      y: input of shape (B, d) or (d,).

    Returns:
      (x with y's shape, log_det of shape (B,) or ()).
    """
    self._check_input(y)
    perms = self.permutations(y.shape[-1])
    log_det = jnp.zeros(y.shape[:-1], dtype=y.dtype)
    for perm, coupling in zip(perms[::-1], self.couplings[::-1]):
      y, ld = coupling(y, inverse=True)
      y = jnp.take(y, np.argsort(perm).astype(np.int32), axis=-1)
      log_det = log_det + ld
    return y, log_det

  def __call__(self, x: Array) -> Array:
    """Forward map y = g(x) for x of shape (B, d) or (d,)."""
    return self.forward_and_log_det(x)[0]

  def inverse(self, y: Array) -> Array:
    """Inverse map x = g^{-1}(y) for y of shape (B, d) or (d,)."""
    return self.inverse_and_log_det(y)[0]
