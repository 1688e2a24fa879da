"""Graph layers and readouts on sparse adjacencies (segment sums).

``GCNLayer`` (Kipf & Welling 2017, PReLU as in DGI) and ``GINLayer`` (Xu et
al. 2019); readouts ``mean_readout``, ``dgi_summary`` (mean + sigmoid, DGI)
and ``sum_readout`` (per-graph sum pooling, InfoGraph).
"""

from typing import Callable, Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from infomax_jax.graphs import sparse

Array = jax.Array

# Glorot-uniform kernels, as the DGI and InfoGraph reference code.
glorot_uniform = nn.initializers.xavier_uniform()


class GCNLayer(nn.Module):
  """Graph convolution h = act(Â X W + b) with a sparse Â (Kipf & Welling 2017).

  As in DGI: W Glorot-uniform, b zero, and a PReLU with one learned slope
  (initial 0.25, PyTorch's default) when ``activation`` is None.

  Attributes:
    features: output width.
    use_bias: add b.
    activation: non-linearity; None means a learned PReLU.
  """
  features: int
  use_bias: bool = True
  activation: Optional[Callable[[Array], Array]] = None

  @nn.compact
  def __call__(self, x: sparse.Features, adjacency: sparse.SparseMatrix,
               row_permutation: Optional[Array] = None
               ) -> Union[Array, tuple[Array, Array]]:
    """Maps (N, F) features (dense or sparse) to (N, features).

    Args:
      x: (N, F) node features, a dense array or a ``SparseMatrix``.
      adjacency: (N, N) normalised adjacency Â.
      row_permutation: optional (N,) permutation. When given, also returns
        the layer's output on the row-shuffled features ``sparse.permute_rows(x,
        row_permutation)`` (DGI's corruption), reusing X W: (P X) W = P (X W).

    Returns:
      h, or (h, h_permuted) when ``row_permutation`` is given.
    """
    if len(x.shape) != 2:
      raise ValueError(f'GCNLayer: x must be (N, F), got shape {x.shape}')
    if adjacency.shape != (x.shape[0], x.shape[0]):
      raise ValueError(f'GCNLayer: adjacency must be ({x.shape[0]}, '
                       f'{x.shape[0]}) for x of shape {x.shape}, got '
                       f'{adjacency.shape}')
    kernel = self.param('kernel', glorot_uniform, (x.shape[1], self.features))
    bias = (self.param('bias', nn.initializers.zeros, (self.features,))
            if self.use_bias else 0.0)
    activation = self.activation
    if activation is None:
      activation = nn.PReLU(negative_slope_init=0.25, name='prelu')
    xw = sparse.matmul(x, kernel)
    h = activation(sparse.spmm(adjacency, xw) + bias)
    if row_permutation is None:
      return h
    return h, activation(sparse.spmm(adjacency, xw[row_permutation]) + bias)


class GINLayer(nn.Module):
  """Graph isomorphism layer h_i = MLP((1 + eps) x_i + sum_{j -> i} x_j).

  (Xu et al. 2019.) The neighbour sum is a segment sum over the sparse
  adjacency; the MLP is Dense-ReLU-Dense, Glorot-initialised as InfoGraph.

  Attributes:
    features: hidden and output width of the MLP.
    epsilon: initial eps (0 as PyG's GINConv default).
    train_epsilon: learn eps.
  """
  features: int
  epsilon: float = 0.0
  train_epsilon: bool = False

  @nn.compact
  def __call__(self, x: Array, adjacency: sparse.SparseMatrix) -> Array:
    """Maps (N, F) node features to (N, features)."""
    eps = (self.param('epsilon', nn.initializers.constant(self.epsilon), ())
           if self.train_epsilon else self.epsilon)
    h = (1.0 + eps) * x + sparse.spmm(adjacency, x)
    h = nn.Dense(self.features, kernel_init=glorot_uniform, name='dense_0')(h)
    return nn.Dense(self.features, kernel_init=glorot_uniform,
                    name='dense_1')(nn.relu(h))


def mean_readout(h: Array, mask: Optional[Array] = None) -> Array:
  """Mean of (N, d) node features over the nodes (of ``mask``): (d,)."""
  if mask is None:
    return jnp.mean(h, axis=0)
  w = mask.astype(h.dtype)[:, None]
  return jnp.sum(h * w, axis=0) / jnp.maximum(jnp.sum(w), 1.0)


def dgi_summary(h: Array) -> Array:
  """DGI's readout s = sigmoid(mean_i h_i): (N, d) -> (d,)."""
  return jax.nn.sigmoid(mean_readout(h))


def sum_readout(h: Array, node_graph: Array, num_graphs: int,
                node_mask: Optional[Array] = None) -> Array:
  """Per-graph sum pooling: (n, d) node features -> (num_graphs, d)."""
  if node_mask is not None:
    h = h * node_mask.astype(h.dtype)[:, None]
  return jax.ops.segment_sum(h, node_graph, num_segments=num_graphs)
