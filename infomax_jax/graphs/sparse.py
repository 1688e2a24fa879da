"""Sparse operators on graphs: COO matrices applied by segment sums.

``SparseMatrix`` holds COO triples and ``spmm`` multiplies it into a dense
array with ``jax.ops.segment_sum``: no dense N x N adjacency anywhere.
Features are sparse too (row-normalised bag-of-words, ~1 % non-zero), so X W
is a gather + segment sum. ``row_blocks`` cuts a matrix into row blocks, one
per device, for data-parallel training (DGI's node set as the batch).
``normalized_adjacency`` is the GCN operator Â = D^-1/2 (A + I) D^-1/2 of Kipf
& Welling (2017).
"""

from typing import Any, Optional, Union

import flax
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@flax.struct.dataclass
class SparseMatrix:
  """A sparse (M, N) matrix as COO triples, applied with a segment sum.

  ``A[rows[k], cols[k]] += values[k]``. Entries with value 0 are allowed (they
  are how padded batches add edges that do nothing).

  Row-blocked layout (for data-parallel training, see ``row_blocks``): when
  ``rows``, ``cols`` and ``values`` are 2-D, (B, nnz_b), block b holds the
  entries of rows [b M/B, (b+1) M/B), its ``rows`` counted from the block's
  first row, so that splitting the leading axis over devices gives each device
  the rows it owns and a product ``A @ x`` is computed block by block, locally.
  ``cols`` are global column indices, or with ``block_diagonal`` (a
  block-diagonal matrix, e.g. a batch of disjoint graphs) indices into the
  block's own columns [b N/B, (b+1) N/B).

  Attributes:
    rows: (nnz,) or (B, nnz_b) int32 row indices.
    cols: (nnz,) or (B, nnz_b) int32 column indices.
    values: (nnz,) or (B, nnz_b) float values.
    shape: (M, N), static; the whole matrix's shape in either layout.
    rows_sorted: whether ``rows`` is non-decreasing (within each block; a
      faster segment sum).
    block_diagonal: (row-blocked layout only) column indices are local to the
      block.
  """
  rows: Array
  cols: Array
  values: Array
  shape: tuple[int, int] = flax.struct.field(pytree_node=False)
  rows_sorted: bool = flax.struct.field(pytree_node=False, default=False)
  block_diagonal: bool = flax.struct.field(pytree_node=False, default=False)

  @property
  def nnz(self) -> int:
    return int(np.prod(self.rows.shape))

  @property
  def num_blocks(self) -> int:
    """B of the row-blocked layout; 0 for the plain layout."""
    return int(self.rows.shape[0]) if len(self.rows.shape) == 2 else 0

  def to_dense(self) -> np.ndarray:
    """The dense (M, N) numpy array (for tests and small graphs)."""
    rows, cols = np.asarray(self.rows), np.asarray(self.cols)
    values = np.asarray(self.values)
    if rows.ndim == 2:
      b = rows.shape[0]
      rows = rows + (np.arange(b) * (self.shape[0] // b))[:, None]
      if self.block_diagonal:
        cols = cols + (np.arange(b) * (self.shape[1] // b))[:, None]
    out = np.zeros(self.shape, values.dtype)
    np.add.at(out, (rows.ravel(), cols.ravel()), values.ravel())
    return out


def sparse_from_coo(rows: Any, cols: Any, values: Any,
                    shape: tuple[int, int]) -> SparseMatrix:
  """A ``SparseMatrix`` from COO triples, sorted by row (then column).

  Args:
    rows: (nnz,) row indices in [0, M).
    cols: (nnz,) column indices in [0, N).
    values: (nnz,) values (cast to float32).
    shape: (M, N).

  Returns:
    The matrix, with ``rows_sorted=True``.
  """
  rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
  values = np.asarray(values, np.float32)
  if not (rows.ndim == cols.ndim == values.ndim == 1
          and rows.shape == cols.shape == values.shape):
    raise ValueError(f'rows, cols and values must be 1-D of one length, got '
                     f'{rows.shape}, {cols.shape}, {values.shape}')
  if len(shape) != 2:
    raise ValueError(f'shape must be (M, N), got {shape}')
  if rows.size and not (0 <= rows.min() and rows.max() < shape[0]
                        and 0 <= cols.min() and cols.max() < shape[1]):
    raise ValueError(f'indices out of range for shape {shape}: rows in '
                     f'[{rows.min()}, {rows.max()}], cols in [{cols.min()}, '
                     f'{cols.max()}]')
  order = np.lexsort((cols, rows))
  return SparseMatrix(rows[order].astype(np.int32),
                      cols[order].astype(np.int32), values[order],
                      (int(shape[0]), int(shape[1])), rows_sorted=True)


def spmm(a: SparseMatrix, x: Array) -> Array:
  """A @ x for a sparse (M, N) ``a`` and a dense (N, ...) ``x``, by segment sum.

  A row-blocked ``a`` is applied block by block (``jax.vmap`` over the blocks:
  with the blocks sharded over devices, each device sums its own rows); the
  result has the same (M, ...) layout either way.

  Args:
    a: the sparse matrix.
    x: dense array whose leading axis has length N.

  Returns:
    (M, ...) array.
  """
  if not isinstance(a, SparseMatrix):
    raise TypeError(f'spmm: a must be a SparseMatrix, got {type(a).__name__}')
  x = jnp.asarray(x)   # a numpy x cannot be indexed by the traced blocks
  if x.shape[0] != a.shape[1]:
    raise ValueError(f'spmm: x must have {a.shape[1]} rows to multiply a '
                     f'matrix of shape {a.shape}, got x of shape {x.shape}')
  rest = (1,) * (x.ndim - 1)

  def block(rows, cols, values, src, num_rows):
    vals = values.reshape(values.shape + rest).astype(x.dtype)
    return jax.ops.segment_sum(vals * src[cols], rows, num_segments=num_rows,
                               indices_are_sorted=a.rows_sorted)

  b = a.num_blocks
  if not b:
    return block(a.rows, a.cols, a.values, x, a.shape[0])
  if b == 1:      # one block is the plain matrix (the same program as one)
    return block(a.rows[0], a.cols[0], a.values[0], x, a.shape[0])
  m = a.shape[0] // b
  if a.block_diagonal:
    src = x.reshape(b, a.shape[1] // b, *x.shape[1:])
    out = jax.vmap(lambda r, c, v, s: block(r, c, v, s, m))(
        a.rows, a.cols, a.values, src)
  else:
    out = jax.vmap(lambda r, c, v: block(r, c, v, x, m))(
        a.rows, a.cols, a.values)
  return out.reshape(a.shape[0], *x.shape[1:])


def row_blocks(a: SparseMatrix, num_blocks: int, *,
               num_rows: Optional[int] = None,
               num_cols: Optional[int] = None) -> SparseMatrix:
  """The row-blocked layout of a plain ``SparseMatrix`` (see its docstring).

  The rows are padded to ``num_rows`` (default: M rounded up to a multiple of
  ``num_blocks``; the padding rows are empty) and cut into ``num_blocks``
  equal blocks; every block's entries are padded to the largest block's count
  with zeros (value 0 on the block's last row, which keeps rows sorted).

  Args:
    a: a plain (M, N) matrix (numpy leaves).
    num_blocks: B, e.g. the number of devices.
    num_rows: the padded row count, a multiple of B that is >= M.
    num_cols: the column count of the result (>= N; e.g. the padded node
      count of a square adjacency matrix).

  Returns:
    The (num_rows, num_cols) matrix in the row-blocked layout (numpy leaves).
  """
  if a.num_blocks:
    raise ValueError('row_blocks: a is already row-blocked')
  if num_blocks < 1:
    raise ValueError(f'num_blocks must be >= 1, got {num_blocks}')
  m, n = a.shape
  num_rows = -(-m // num_blocks) * num_blocks if num_rows is None else num_rows
  num_cols = n if num_cols is None else num_cols
  if num_rows < m or num_rows % num_blocks or num_cols < n:
    raise ValueError(f'row_blocks: need num_rows >= {m} divisible by '
                     f'{num_blocks} and num_cols >= {n}, got {num_rows} and '
                     f'{num_cols}')
  per = num_rows // num_blocks
  rows, cols = np.asarray(a.rows, np.int64), np.asarray(a.cols, np.int32)
  values = np.asarray(a.values)
  block = rows // per
  order = np.argsort(block, kind='stable')     # keeps each block's row order
  counts = np.bincount(block, minlength=num_blocks)
  width = max(int(counts.max(initial=0)), 1)
  out_rows = np.full((num_blocks, width), per - 1, np.int32)
  out_cols = np.zeros((num_blocks, width), np.int32)
  out_values = np.zeros((num_blocks, width), values.dtype)
  starts = np.concatenate([[0], np.cumsum(counts)])
  for b in range(num_blocks):
    idx = order[starts[b]:starts[b + 1]]
    out_rows[b, :idx.size] = rows[idx] - b * per
    out_cols[b, :idx.size] = cols[idx]
    out_values[b, :idx.size] = values[idx]
  return SparseMatrix(out_rows, out_cols, out_values, (num_rows, num_cols),
                      rows_sorted=a.rows_sorted)


Features = Union[Array, SparseMatrix]


def matmul(x: Features, w: Array) -> Array:
  """x @ w for dense or sparse ``x``."""
  return spmm(x, w) if isinstance(x, SparseMatrix) else x @ w


def permute_rows(x: Features, permutation: Array) -> Features:
  """The rows of ``x`` reordered: row i of the result is row permutation[i].

  This is DGI's corruption (row-shuffled features). For a sparse ``x`` the
  entries are relabelled instead of moved: row r goes to inverse[r].
  """
  if not isinstance(x, SparseMatrix):
    return x[permutation]
  if x.num_blocks:
    raise ValueError('permute_rows: x is row-blocked; permute the rows of '
                     'X W instead (as GCNLayer does)')
  inverse = jnp.zeros_like(permutation).at[permutation].set(
      jnp.arange(permutation.shape[0], dtype=permutation.dtype))
  return x.replace(rows=inverse[x.rows], rows_sorted=False)


def row_normalize(x: SparseMatrix) -> SparseMatrix:
  """Divides each row by its sum (zero rows stay zero), as Kipf & Welling."""
  rows, values = np.asarray(x.rows), np.asarray(x.values, np.float64)
  sums = np.bincount(rows, weights=values, minlength=x.shape[0])
  inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
  return x.replace(values=(values * inv[rows]).astype(np.float32))


def undirected_edges(pairs: Any, num_nodes: int) -> np.ndarray:
  """Unique undirected edges (i < j), self-loops dropped, from (E, 2) pairs.

  Args:
    pairs: (E, 2) node index pairs in either direction, duplicates allowed.
    num_nodes: N, for range checking.

  Returns:
    (E', 2) int32 array, sorted lexicographically.
  """
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  if pairs.size and not 0 <= pairs.min() <= pairs.max() < num_nodes:
    raise ValueError(f'edge endpoints must lie in [0, {num_nodes}), got '
                     f'[{pairs.min()}, {pairs.max()}]')
  pairs = np.sort(pairs, axis=1)
  pairs = pairs[pairs[:, 0] != pairs[:, 1]]
  return np.unique(pairs, axis=0).astype(np.int32)


def normalized_adjacency(edges: Any, num_nodes: int) -> SparseMatrix:
  """Â = D^-1/2 (A + I) D^-1/2 of an undirected graph (Kipf & Welling 2017).

  Args:
    edges: (E, 2) undirected edges (each once, no self-loops), e.g. from
      ``undirected_edges``.
    num_nodes: N.

  Returns:
    The symmetric (N, N) ``SparseMatrix`` Â with 2E + N entries; D is the
    degree matrix of A + I (every degree >= 1, isolated nodes get Â_ii = 1).
  """
  edges = np.asarray(edges, np.int64).reshape(-1, 2)
  loops = np.arange(num_nodes)
  rows = np.concatenate([edges[:, 0], edges[:, 1], loops])
  cols = np.concatenate([edges[:, 1], edges[:, 0], loops])
  degree = np.bincount(rows, minlength=num_nodes).astype(np.float64)
  values = 1.0 / np.sqrt(degree[rows] * degree[cols])
  return sparse_from_coo(rows, cols, values, (num_nodes, num_nodes))
