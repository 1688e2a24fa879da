"""Graph infomax: Deep Graph Infomax (DGI) and InfoGraph on sparse graphs.

* **Data.** Planetoid citation graphs (Cora, CiteSeer) from the original
  ``ind.<name>.*`` pickles, read by a restricted unpickler that builds only the
  numpy / scipy-CSR / adjacency-list objects those files hold; TU-format graph
  classification sets (MUTAG) into padded, segment-indexed graph batches.
  Files are looked up under ``data_dir`` or ``$INFOMAX_DATA_DIR``.
* **Sparse operators.** ``SparseMatrix`` (COO triples) and ``spmm`` built on
  ``jax.ops.segment_sum``: no dense N x N adjacency anywhere. Features are
  sparse too (row-normalised bag-of-words, ~1 % non-zero), so X W is a
  gather + segment sum.
* **Encoders.** ``GCNLayer`` (Kipf & Welling 2017, PReLU as in DGI) and
  ``GINLayer`` (Xu et al. 2019); readouts ``dgi_summary`` (mean + sigmoid) and
  ``sum_readout`` (per-graph sum pooling, concatenated over layers by
  ``GINEncoder`` as in InfoGraph).
* **Objectives.** ``masked_bound`` evaluates the JSD, InfoNCE, DV and NWJ
  estimators of ``infomax_jax.bounds`` on a rectangular score matrix whose
  positive pairs are given by a mask rather than by the diagonal; it reduces
  exactly to ``bounds.jsd`` / ``infonce`` / ``dv`` / ``nwj`` when the mask is
  the identity. ``dgi_objective`` (node vs summary, real vs row-shuffled
  features) and ``infograph_objective`` (node vs graph across a batch) use it.
* **Training.** ``train_dgi`` and ``train_infograph`` run ``dgi_task`` and
  ``infograph_task`` through ``infomax_jax.train.train`` (checkpoints, exact
  resume), data parallel over every device: DGI's batch is the node set
  (node rows of X and Â in one ``row_blocks`` block per device, the graph
  replicated), InfoGraph's the graphs of a mini-batch (one padded block of
  graphs per device, built on device by ``device_graph_batch``). Both give
  the single-device objective; see the two task builders.

References:
  Velickovic et al., "Deep Graph Infomax", ICLR 2019.
  Sun et al., "InfoGraph: Unsupervised and Semi-supervised Graph-Level
  Representation Learning via Mutual Information Maximization", ICLR 2020.
  Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional
  Networks", ICLR 2017 (the Planetoid preprocessing and GCN normalisation).
"""

import collections
import contextlib
import dataclasses
import io
import os
import pickle
import tempfile
import time
from typing import Any, Callable, Optional, Sequence, Union

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from infomax_jax import runs
from infomax_jax import bounds
from infomax_jax import data as data_lib
from infomax_jax import parallel
from infomax_jax import registry
from infomax_jax import train as train_lib

Array = jax.Array
PyTree = Any

DATA_DIR_ENV = data_lib.DATA_DIR_ENV


# ------------------------------------------------------------ data folder --

def resolve_data_dir(data_dir: Optional[str] = None) -> str:
  """The data folder: ``data_dir`` if given, else ``$INFOMAX_DATA_DIR``.

  The same setting as the image data of ``infomax_jax.data``.

  Args:
    data_dir: a folder holding ``planetoid/`` and/or ``MUTAG/``, or None.

  Returns:
    The folder path.

  Raises:
    ValueError: when neither is set.
  """
  # pylint: disable-next=protected-access
  data_dir = data_lib._resolve_data_dir(data_dir)
  if data_dir is None:
    raise ValueError(
        f'no data folder: pass data_dir=... or set the environment variable '
        f'{DATA_DIR_ENV} to a folder holding planetoid/ind.cora.* and MUTAG/')
  return data_dir


def _require_files(paths: Sequence[str], what: str) -> None:
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise FileNotFoundError(
        f'{what}: {len(missing)} of {len(paths)} expected files are missing: '
        f'{", ".join(missing)} (the folder comes from the data_dir argument or '
        f'${DATA_DIR_ENV})')


# ---------------------------------------------------- restricted unpickler --

class UnsafePickleError(pickle.UnpicklingError):
  """A pickle asked for a global outside the restricted unpickler's list."""


class _CSRMatrixState:
  """Stand-in for ``scipy.sparse.csr_matrix``: keeps the pickled state only.

  The Planetoid pickles were written by scipy; rebuilding them through this
  class avoids importing (or trusting) scipy's ``__setstate__`` and makes scipy
  unnecessary at run time. ``_csr_arrays`` validates the state afterwards.
  """

  def __setstate__(self, state: Any) -> None:
    if not isinstance(state, dict):
      raise UnsafePickleError(
          f'csr_matrix state must be a dict, got {type(state).__name__}')
    self.state = state


def _safe_dtype(*args: Any) -> np.dtype:
  dtype = np.dtype(*args)
  if dtype.hasobject:
    raise UnsafePickleError(f'object dtypes are not allowed in a data pickle, '
                            f'got dtype {dtype}')
  return dtype


def _numpy_reconstruct():
  try:
    from numpy._core import multiarray  # pylint: disable=g-import-not-at-top
  except ImportError:  # numpy < 2
    from numpy.core import multiarray  # pylint: disable=g-import-not-at-top
  return multiarray._reconstruct  # pylint: disable=protected-access


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
  if subtype is not np.ndarray:
    raise UnsafePickleError(
        f'_reconstruct may only build numpy.ndarray, got {subtype!r}')
  return _numpy_reconstruct()(subtype, shape, _safe_dtype(dtype))


# (module, name) -> what it resolves to. Python-2 pickles name '__builtin__'
# and 'numpy.core'; scipy >= 1.8 pickles name 'scipy.sparse._csr'.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ('numpy.core.multiarray', '_reconstruct'): _safe_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _safe_reconstruct,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): _safe_dtype,
    ('scipy.sparse.csr', 'csr_matrix'): _CSRMatrixState,
    ('scipy.sparse._csr', 'csr_matrix'): _CSRMatrixState,
    ('scipy.sparse', 'csr_matrix'): _CSRMatrixState,
    ('collections', 'defaultdict'): collections.defaultdict,
    ('__builtin__', 'list'): list,
    ('builtins', 'list'): list,
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the globals of ``_SAFE_GLOBALS``; anything else raises."""

  def find_class(self, module: str, name: str) -> Any:
    try:
      return _SAFE_GLOBALS[(module, name)]
    except KeyError:
      allowed = ', '.join(sorted(f'{m}.{n}' for m, n in _SAFE_GLOBALS))
      raise UnsafePickleError(
          f'refusing to load {module}.{name}: this pickle asks for a global '
          f'outside the Planetoid allow-list ({allowed})') from None


def restricted_loads(data: bytes) -> Any:
  """Unpickles ``data``, allowing numpy arrays, CSR matrices, dict-of-lists.

  Python-2 pickles are read with ``encoding='latin1'`` (the Planetoid files
  were written by Python 2). scipy CSR matrices come back as
  ``_CSRMatrixState``; use ``_csr_arrays`` on them.

  Args:
    data: the pickle's bytes.

  Returns:
    The unpickled object.

  Raises:
    UnsafePickleError: the pickle references any other global (``os.system``,
      ``builtins.eval``, ...); nothing it names is ever imported or called.
  """
  if not isinstance(data, (bytes, bytearray)):
    raise TypeError(f'restricted_loads: expected bytes, got '
                    f'{type(data).__name__}')
  return _RestrictedUnpickler(io.BytesIO(data), encoding='latin1').load()


def restricted_load(path: str) -> Any:
  """``restricted_loads`` of the file at ``path``."""
  with open(path, 'rb') as f:
    return restricted_loads(f.read())


def _csr_arrays(obj: Any, what: str) -> tuple[np.ndarray, np.ndarray,
                                              np.ndarray, tuple[int, int]]:
  """(data, indices, indptr, shape) of an unpickled CSR matrix, validated."""
  if not isinstance(obj, _CSRMatrixState):
    raise ValueError(f'{what}: expected a scipy CSR matrix, got '
                     f'{type(obj).__name__}')
  state = obj.state
  shape = state.get('_shape', state.get('shape'))
  try:
    data, indices, indptr = (np.asarray(state[k]) for k in
                             ('data', 'indices', 'indptr'))
  except KeyError as e:
    raise ValueError(f'{what}: CSR state lacks {e}; keys: '
                     f'{sorted(state)}') from None
  if (not isinstance(shape, tuple) or len(shape) != 2
      or indptr.shape != (shape[0] + 1,) or data.shape != indices.shape
      or indptr[-1] != data.shape[0]
      or (indices.size and not 0 <= indices.min() <= indices.max() < shape[1])):
    raise ValueError(f'{what}: inconsistent CSR matrix (shape {shape}, indptr '
                     f'{indptr.shape}, indices {indices.shape}, data '
                     f'{data.shape})')
  return data, indices, indptr, (int(shape[0]), int(shape[1]))


def _dense_array(obj: Any, what: str, ndim: int) -> np.ndarray:
  if not isinstance(obj, np.ndarray) or obj.ndim != ndim or obj.dtype.hasobject:
    raise ValueError(f'{what}: expected a numeric {ndim}-D numpy array, got '
                     f'{type(obj).__name__} {getattr(obj, "shape", "")}')
  return obj


# --------------------------------------------------------- sparse matrices --

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


# -------------------------------------------------------------- Planetoid --

PLANETOID_NAMES = ('cora', 'citeseer')
_PLANETOID_PARTS = ('x', 'y', 'tx', 'ty', 'allx', 'ally', 'graph')


@dataclasses.dataclass(frozen=True)
class Planetoid:
  """A Planetoid citation graph with the public split (Yang et al. 2016).

  Attributes:
    name: 'cora' or 'citeseer'.
    features: (N, F) row-normalised sparse bag-of-words features.
    labels: (N,) int32 class ids; -1 for nodes without a label (the 15
      isolated CiteSeer test-range nodes).
    edges: (E, 2) undirected edges, i < j, unique, no self-loops.
    train_index: (20 per class,) node ids of the training split.
    val_index: (500,) node ids of the validation split.
    test_index: (1000,) node ids of the test split.
    num_classes: number of classes.
  """
  name: str
  features: SparseMatrix
  labels: np.ndarray
  edges: np.ndarray
  train_index: np.ndarray
  val_index: np.ndarray
  test_index: np.ndarray
  num_classes: int

  @property
  def num_nodes(self) -> int:
    return self.features.shape[0]

  @property
  def num_features(self) -> int:
    return self.features.shape[1]

  def adjacency(self) -> SparseMatrix:
    """Â = D^-1/2 (A + I) D^-1/2 as a sparse operator."""
    return normalized_adjacency(self.edges, self.num_nodes)


def _parse_test_index(path: str) -> np.ndarray:
  with open(path) as f:
    try:
      return np.array([int(line) for line in f if line.strip()], np.int64)
    except ValueError as e:
      raise ValueError(f'{path}: expected one integer per line ({e})') from None


def load_planetoid(name: str, data_dir: Optional[str] = None) -> Planetoid:
  """Loads Cora or CiteSeer from ``<data_dir>/planetoid/ind.<name>.*``.

  Follows the preprocessing of Kipf & Welling / DGI: nodes 0..len(allx)-1 take
  ``allx``/``ally``; test row k belongs to node ``test.index[k]``; nodes in the
  test range absent from ``test.index`` (CiteSeer's isolated nodes) get zero
  features and label -1; train = the first len(y) nodes, val = the next 500
  (fewer if allx is shorter), test = the sorted test index. Features are
  row-normalised; the graph is symmetrised, de-duplicated and stripped of
  self-loops.

  Args:
    name: 'cora' or 'citeseer' (case-insensitive).
    data_dir: folder holding ``planetoid/``; default ``$INFOMAX_DATA_DIR``.

  Returns:
    A ``Planetoid``.

  Raises:
    ValueError: unknown name, no data folder, or malformed files.
    FileNotFoundError: files missing.
    UnsafePickleError: a file references a non-allowed global.
  """
  if not isinstance(name, str) or name.lower() not in PLANETOID_NAMES:
    raise ValueError(f'unknown Planetoid data set {name!r}; valid names are: '
                     f'{", ".join(PLANETOID_NAMES)} (PubMed is not available '
                     f'offline)')
  name = name.lower()
  folder = os.path.join(resolve_data_dir(data_dir), 'planetoid')
  paths = {p: os.path.join(folder, f'ind.{name}.{p}')
           for p in (*_PLANETOID_PARTS, 'test.index')}
  _require_files(list(paths.values()), f'Planetoid {name}')
  raw = {p: restricted_load(paths[p]) for p in _PLANETOID_PARTS}
  test_index = _parse_test_index(paths['test.index'])

  allx = _csr_arrays(raw['allx'], f'ind.{name}.allx')
  tx = _csr_arrays(raw['tx'], f'ind.{name}.tx')
  ally = _dense_array(raw['ally'], f'ind.{name}.ally', 2)
  ty = _dense_array(raw['ty'], f'ind.{name}.ty', 2)
  y = _dense_array(raw['y'], f'ind.{name}.y', 2)
  graph = raw['graph']
  if not isinstance(graph, dict):
    raise ValueError(f'ind.{name}.graph: expected a dict of adjacency lists, '
                     f'got {type(graph).__name__}')
  num_features = allx[3][1]
  if tx[3][1] != num_features or tx[3][0] != test_index.size or (
      ty.shape[0] != test_index.size or ally.shape[0] != allx[3][0]):
    raise ValueError(f'{name}: inconsistent shapes: allx {allx[3]}, tx '
                     f'{tx[3]}, ally {ally.shape}, ty {ty.shape}, test.index '
                     f'{test_index.shape}')
  num_nodes = max(allx[3][0], int(test_index.max()) + 1,
                  max(int(k) for k in graph) + 1)

  # Row r of allx is node r; row k of tx is node test_index[k].
  def node_coo(csr, node_of_row):
    data, indices, indptr, shape = csr
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    return node_of_row[rows], indices, data
  r1, c1, v1 = node_coo(allx, np.arange(allx[3][0]))
  r2, c2, v2 = node_coo(tx, test_index)
  features = row_normalize(sparse_from_coo(
      np.concatenate([r1, r2]), np.concatenate([c1, c2]),
      np.concatenate([v1, v2]), (num_nodes, num_features)))

  num_classes = ally.shape[1]
  onehot = np.zeros((num_nodes, num_classes), np.float32)
  onehot[:ally.shape[0]] = ally
  onehot[test_index] = ty
  labels = np.where(onehot.sum(axis=1) > 0, onehot.argmax(axis=1), -1)

  pairs = [(int(u), int(v)) for u, nbrs in graph.items() for v in nbrs]
  edges = undirected_edges(np.array(pairs, np.int64), num_nodes)
  return Planetoid(
      name=name, features=features, labels=labels.astype(np.int32),
      edges=edges,
      train_index=np.arange(y.shape[0], dtype=np.int32),
      val_index=np.arange(y.shape[0], min(y.shape[0] + 500, allx[3][0]),
                          dtype=np.int32),
      test_index=np.sort(test_index).astype(np.int32),
      num_classes=num_classes)


# --------------------------------------------------------- TU graph sets --

@dataclasses.dataclass(frozen=True)
class TUDataset:
  """A TU-format graph classification set (Morris et al. 2020), e.g. MUTAG.

  Nodes of all graphs are numbered consecutively, graph by graph.

  Attributes:
    name: data set name.
    node_features: (n, L) one-hot node labels, float32.
    edges: (m, 2) directed edges (sender, receiver) as listed in ``DS_A.txt``
      (both directions of every undirected edge), 0-based.
    node_graph: (n,) graph id of every node, non-decreasing.
    graph_labels: (G,) class ids 0..C-1 (the file's labels, sorted).
    label_values: (C,) the file's label value of each class id.
  """
  name: str
  node_features: np.ndarray
  edges: np.ndarray
  node_graph: np.ndarray
  graph_labels: np.ndarray
  label_values: np.ndarray

  @property
  def num_graphs(self) -> int:
    return int(self.graph_labels.shape[0])

  @property
  def num_nodes(self) -> int:
    return int(self.node_graph.shape[0])

  @property
  def num_classes(self) -> int:
    return int(self.label_values.shape[0])

  @property
  def node_offsets(self) -> np.ndarray:
    """(G + 1,) first node of each graph (and n at the end)."""
    return np.searchsorted(self.node_graph, np.arange(self.num_graphs + 1))

  @property
  def edge_offsets(self) -> np.ndarray:
    """(G + 1,) first edge of each graph in ``edges`` (sorted by graph)."""
    return np.searchsorted(self.node_graph[self.edges[:, 0]],
                           np.arange(self.num_graphs + 1))


def _read_ints(path: str, columns: int) -> np.ndarray:
  try:
    out = np.loadtxt(path, delimiter=',', dtype=np.int64, ndmin=2)
  except ValueError as e:
    raise ValueError(f'{path}: expected {columns} comma-separated integer '
                     f'column(s) ({e})') from None
  if out.shape[1] != columns:
    raise ValueError(f'{path}: expected {columns} column(s), got '
                     f'{out.shape[1]}')
  return out if columns > 1 else out[:, 0]


def load_tu_dataset(name: str = 'MUTAG',
                    data_dir: Optional[str] = None) -> TUDataset:
  """Loads a TU-format data set from ``<data_dir>/<name>/<name>_*.txt``.

  Reads ``_A`` (1-based edge list), ``_graph_indicator``, ``_graph_labels``
  and ``_node_labels`` (one-hot encoded over the labels present). Edges are
  sorted by graph; every edge must join two nodes of one graph.

  Args:
    name: folder and file prefix, e.g. 'MUTAG'.
    data_dir: folder holding ``<name>/``; default ``$INFOMAX_DATA_DIR``.

  Returns:
    A ``TUDataset``.
  """
  folder = os.path.join(resolve_data_dir(data_dir), name)
  parts = ('A', 'graph_indicator', 'graph_labels', 'node_labels')
  paths = {p: os.path.join(folder, f'{name}_{p}.txt') for p in parts}
  _require_files(list(paths.values()), f'TU data set {name}')
  edges = _read_ints(paths['A'], 2) - 1
  node_graph = _read_ints(paths['graph_indicator'], 1) - 1
  raw_labels = _read_ints(paths['graph_labels'], 1)
  node_labels = _read_ints(paths['node_labels'], 1)
  n, num_graphs = node_graph.shape[0], raw_labels.shape[0]
  if node_labels.shape[0] != n:
    raise ValueError(f'{name}: {node_labels.shape[0]} node labels for {n} '
                     f'nodes')
  if np.any(np.diff(node_graph) < 0) or node_graph.min() != 0 or (
      node_graph.max() != num_graphs - 1):
    raise ValueError(f'{name}: graph indicator must be sorted with ids 1..'
                     f'{num_graphs}, got range [{node_graph.min() + 1}, '
                     f'{node_graph.max() + 1}]')
  if edges.size and not 0 <= edges.min() <= edges.max() < n:
    raise ValueError(f'{name}: edge endpoints must lie in [1, {n}]')
  if np.any(node_graph[edges[:, 0]] != node_graph[edges[:, 1]]):
    raise ValueError(f'{name}: some edges join nodes of different graphs')
  edges = edges[np.argsort(node_graph[edges[:, 0]], kind='stable')]
  label_values, graph_labels = np.unique(raw_labels, return_inverse=True)
  node_values, node_ids = np.unique(node_labels, return_inverse=True)
  features = np.eye(node_values.shape[0], dtype=np.float32)[node_ids]
  return TUDataset(name=name, node_features=features,
                   edges=edges.astype(np.int32),
                   node_graph=node_graph.astype(np.int32),
                   graph_labels=graph_labels.astype(np.int32),
                   label_values=label_values)


@flax.struct.dataclass
class GraphBatch:
  """Graphs packed into one padded, segment-indexed batch.

  Built on the host by ``batch_graphs``, or on device by ``device_graph_batch``
  as B blocks of graphs (one per device): then the node rows are B blocks of
  equal size, graph slots likewise, and ``adjacency`` is block-diagonal in the
  row-blocked layout of ``SparseMatrix``; the model code is the same.

  Attributes:
    x: (n_pad, F) node features (zero on padding nodes).
    adjacency: (n_pad, n_pad) sparse adjacency, rows = receivers, with value 0
      on padding edges.
    node_graph: (n_pad,) graph slot of every node in [0, g_pad).
    node_mask: (n_pad,) True for real nodes.
    graph_mask: (g_pad,) True for real graphs.
  """
  x: Array
  adjacency: SparseMatrix
  node_graph: Array
  node_mask: Array
  graph_mask: Array

  @property
  def num_graphs(self) -> int:
    """g_pad, the number of graph slots (static)."""
    return int(self.graph_mask.shape[0])


def padded_sizes(dataset: TUDataset, batch_size: int) -> tuple[int, int]:
  """(nodes, edges) that fit any ``batch_size`` graphs of ``dataset``."""
  nodes = np.sort(np.diff(dataset.node_offsets))[::-1]
  edges = np.sort(np.diff(dataset.edge_offsets))[::-1]
  return int(nodes[:batch_size].sum()), int(edges[:batch_size].sum())


def batch_graphs(dataset: TUDataset, graph_ids: Sequence[int], *,
                 num_nodes: int, num_edges: int, num_graphs: int) -> GraphBatch:
  """Packs the graphs ``graph_ids`` into a ``GraphBatch`` of fixed padded sizes.

  Fixed sizes keep one compiled step for every batch. Padding edges join node
  0 to itself with value 0; padding nodes belong to the last graph slot and
  are masked out of pooling, batch statistics and objectives.

  Args:
    dataset: the data set.
    graph_ids: ids of the graphs, at most ``num_graphs`` of them.
    num_nodes: padded node count (>= the graphs' total).
    num_edges: padded edge count (>= the graphs' total).
    num_graphs: padded graph count.

  Returns:
    The batch (numpy leaves; jit converts them).
  """
  graph_ids = np.asarray(graph_ids, np.int64)
  if graph_ids.ndim != 1 or not 0 < graph_ids.size <= num_graphs:
    raise ValueError(f'graph_ids must be 1-D with 1..{num_graphs} ids, got '
                     f'shape {graph_ids.shape}')
  node_off, edge_off = dataset.node_offsets, dataset.edge_offsets
  node_idx = np.concatenate([np.arange(node_off[g], node_off[g + 1])
                             for g in graph_ids])
  edge_idx = np.concatenate([np.arange(edge_off[g], edge_off[g + 1])
                             for g in graph_ids])
  n, m = node_idx.size, edge_idx.size
  if n > num_nodes or m > num_edges:
    raise ValueError(f'batch needs {n} nodes and {m} edges, padded sizes are '
                     f'{num_nodes} and {num_edges} (see padded_sizes)')
  new_id = np.full(dataset.num_nodes, -1, np.int64)
  new_id[node_idx] = np.arange(n)
  slot = np.full(dataset.num_graphs, -1, np.int64)
  slot[graph_ids] = np.arange(graph_ids.size)

  x = np.zeros((num_nodes, dataset.node_features.shape[1]), np.float32)
  x[:n] = dataset.node_features[node_idx]
  node_graph = np.full(num_nodes, num_graphs - 1, np.int32)
  node_graph[:n] = slot[dataset.node_graph[node_idx]]
  senders = np.zeros(num_edges, np.int64)
  receivers = np.zeros(num_edges, np.int64)
  values = np.zeros(num_edges, np.float32)
  senders[:m] = new_id[dataset.edges[edge_idx, 0]]
  receivers[:m] = new_id[dataset.edges[edge_idx, 1]]
  values[:m] = 1.0
  return GraphBatch(
      x=x,
      adjacency=sparse_from_coo(receivers, senders, values,
                                (num_nodes, num_nodes)),
      node_graph=node_graph,
      node_mask=np.arange(num_nodes) < n,
      graph_mask=np.arange(num_graphs) < graph_ids.size)


def tu_arrays(dataset: TUDataset) -> dict[str, np.ndarray]:
  """The arrays ``device_graph_batch`` reads (features, edges, offsets)."""
  return {'node_features': dataset.node_features,
          'edges': dataset.edges.astype(np.int32),
          'node_offsets': dataset.node_offsets.astype(np.int32),
          'edge_offsets': dataset.edge_offsets.astype(np.int32)}


def device_graph_batch(arrays: dict[str, Array], graph_ids: Array, *,
                       num_nodes: int, num_edges: int) -> GraphBatch:
  """A ``GraphBatch`` of B blocks of graphs, built on device (jittable).

  Block b packs the graphs ``graph_ids[b]`` (-1: an empty slot) into
  ``num_nodes`` node rows and ``num_edges`` edges, as ``batch_graphs`` does
  for one batch; the blocks are concatenated, so node rows, graph slots (slot
  s of block b is graph b g + s) and the block-diagonal adjacency split
  evenly over B devices, and every graph's nodes and edges stay in its block
  (message passing is local to a device; batch statistics, pooled graph
  vectors and the node-vs-graph scores span the whole batch).

  Args:
    arrays: ``tu_arrays(dataset)`` (device arrays).
    graph_ids: (B, g) int graph ids, -1 for empty slots.
    num_nodes: node rows per block (>= the nodes of any g graphs, see
      ``padded_sizes(dataset, g)``).
    num_edges: edges per block, likewise.

  Returns:
    The batch: x (B num_nodes, F), node_graph, node_mask (B num_nodes,),
    graph_mask (B g,), adjacency of shape (B num_nodes,) * 2 with (B,
    num_edges) index arrays.
  """
  graph_ids = jnp.asarray(graph_ids, jnp.int32)
  b, g = graph_ids.shape
  node_off, edge_off = arrays['node_offsets'], arrays['edge_offsets']

  def one_block(ids):
    valid = ids >= 0
    safe = jnp.where(valid, ids, 0)
    n_start, e_start = node_off[safe], edge_off[safe]
    n_end = jnp.cumsum(jnp.where(valid, node_off[safe + 1] - n_start, 0))
    e_end = jnp.cumsum(jnp.where(valid, edge_off[safe + 1] - e_start, 0))
    n_begin = jnp.concatenate([jnp.zeros(1, n_end.dtype), n_end[:-1]])
    e_begin = jnp.concatenate([jnp.zeros(1, e_end.dtype), e_end[:-1]])
    # Node row k: slot = first slot whose nodes end after k.
    k = jnp.arange(num_nodes)
    real = k < n_end[-1]
    slot = jnp.minimum(jnp.searchsorted(n_end, k, side='right'), g - 1)
    src = jnp.where(real, n_start[slot] + k - n_begin[slot], 0)
    x = jnp.where(real[:, None], arrays['node_features'][src], 0.0)
    # Edges likewise; endpoints move from dataset ids to the block's rows.
    e = jnp.arange(num_edges)
    e_real = e < e_end[-1]
    e_slot = jnp.minimum(jnp.searchsorted(e_end, e, side='right'), g - 1)
    edge = arrays['edges'][jnp.where(e_real, e_start[e_slot] + e - e_begin[e_slot], 0)]
    shift = n_begin[e_slot] - n_start[e_slot]
    # Padding edges: value 0 on the last row. Sorted by (receiver, sender)
    # as batch_graphs' matrices: the same sums in the same order, and a
    # segment sum over sorted rows.
    senders = jnp.where(e_real, edge[:, 0] + shift, 0)
    receivers = jnp.where(e_real, edge[:, 1] + shift, num_nodes - 1)
    order = jnp.lexsort((senders, receivers))
    return (x, jnp.where(real, slot, g - 1), real, receivers[order],
            senders[order], e_real[order].astype(jnp.float32), valid)

  x, slot, real, receivers, senders, values, valid = jax.vmap(one_block)(
      graph_ids)
  first_slot = (jnp.arange(b, dtype=jnp.int32) * g)[:, None]
  n = b * num_nodes
  return GraphBatch(
      x=x.reshape(n, x.shape[-1]),
      adjacency=SparseMatrix(receivers.astype(jnp.int32),
                             senders.astype(jnp.int32), values, (n, n),
                             rows_sorted=True, block_diagonal=True),
      node_graph=(slot + first_slot).reshape(n).astype(jnp.int32),
      node_mask=real.reshape(n),
      graph_mask=valid.reshape(b * g))


# ----------------------------------------------------------------- layers --

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
  def __call__(self, x: Features, adjacency: SparseMatrix,
               row_permutation: Optional[Array] = None
               ) -> Union[Array, tuple[Array, Array]]:
    """Maps (N, F) features (dense or sparse) to (N, features).

    Args:
      x: (N, F) node features, a dense array or a ``SparseMatrix``.
      adjacency: (N, N) normalised adjacency Â.
      row_permutation: optional (N,) permutation. When given, also returns
        the layer's output on the row-shuffled features ``permute_rows(x,
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
    kernel = self.param('kernel', nn.initializers.xavier_uniform(),
                        (x.shape[1], self.features))
    bias = (self.param('bias', nn.initializers.zeros, (self.features,))
            if self.use_bias else 0.0)
    activation = self.activation
    if activation is None:
      activation = nn.PReLU(negative_slope_init=0.25, name='prelu')
    xw = matmul(x, kernel)
    h = activation(spmm(adjacency, xw) + bias)
    if row_permutation is None:
      return h
    return h, activation(spmm(adjacency, xw[row_permutation]) + bias)


_glorot = nn.initializers.xavier_uniform()


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
  def __call__(self, x: Array, adjacency: SparseMatrix) -> Array:
    """Maps (N, F) node features to (N, features)."""
    eps = (self.param('epsilon', nn.initializers.constant(self.epsilon), ())
           if self.train_epsilon else self.epsilon)
    h = (1.0 + eps) * x + spmm(adjacency, x)
    h = nn.Dense(self.features, kernel_init=_glorot, name='dense_0')(h)
    return nn.Dense(self.features, kernel_init=_glorot,
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


# --------------------------------------------------------- masked bounds --

def _check_masked(scores: Any, positive_mask: Any,
                  negative_mask: Any) -> tuple[Array, Array, Array]:
  if not hasattr(scores, 'shape'):
    raise TypeError(f'masked_bound: scores must be an array, got '
                    f'{type(scores).__name__}')
  if len(scores.shape) != 2:
    raise ValueError(f'masked_bound: scores must have shape (R, C), got '
                     f'{scores.shape}')
  scores = jnp.asarray(scores)
  if not jnp.issubdtype(scores.dtype, jnp.floating):
    raise ValueError(f'masked_bound: scores must have a floating dtype, got '
                     f'{scores.dtype}')
  if jnp.finfo(scores.dtype).bits < 32:
    scores = scores.astype(jnp.float32)
  masks = []
  for name, mask in (('positive_mask', positive_mask),
                     ('negative_mask', negative_mask)):
    if mask is None:
      masks.append(None)
      continue
    if not hasattr(mask, 'shape') or tuple(mask.shape) != tuple(scores.shape):
      raise ValueError(f'masked_bound: {name} must have the shape of scores '
                       f'{tuple(scores.shape)}, got '
                       f'{getattr(mask, "shape", type(mask).__name__)}')
    if jnp.asarray(mask).dtype != jnp.bool_:
      raise TypeError(f'masked_bound: {name} must be boolean, got dtype '
                      f'{jnp.asarray(mask).dtype}')
    masks.append(jnp.asarray(mask))
  pos, neg = masks
  if neg is None:
    neg = ~pos
  concrete = not any(isinstance(m, jax.core.Tracer) for m in (pos, neg))
  if concrete:
    if not bool(jnp.any(pos)) or not bool(jnp.any(neg)):
      raise ValueError(f'masked_bound: need at least one positive and one '
                       f'negative pair, got {int(jnp.sum(pos))} and '
                       f'{int(jnp.sum(neg))}')
    if bool(jnp.any(pos & neg)):
      raise ValueError('masked_bound: positive_mask and negative_mask overlap')
  return scores, pos, neg


def masked_mean(values: Array, mask: Array) -> Array:
  """Mean of ``values`` over the True entries of ``mask`` (0 if none)."""
  total = jnp.sum(jnp.where(mask, values, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1).astype(values.dtype)


def masked_logmeanexp(scores: Array, mask: Array) -> Array:
  """log of the mean of e^scores over the True entries of ``mask``."""
  count = jnp.sum(mask).astype(scores.dtype)
  return jax.nn.logsumexp(jnp.where(mask, scores, -jnp.inf)) - jnp.log(count)


def _masked_jsd(s: Array, pos: Array, neg: Array) -> Array:
  return (-masked_mean(jax.nn.softplus(-s), pos)
          - masked_mean(jax.nn.softplus(s), neg))


def _masked_dv(s: Array, pos: Array, neg: Array) -> Array:
  return masked_mean(s, pos) - masked_logmeanexp(s, neg)


def _masked_nwj(s: Array, pos: Array, neg: Array) -> Array:
  # Same saturating exponential as bounds.nwj (finite for huge scores).
  # pylint: disable-next=protected-access
  exp = bounds._exp_saturating(s - 1.0)
  return masked_mean(s, pos) - masked_mean(exp, neg)


def _masked_infonce(s: Array, pos: Array, neg: Array) -> Array:
  # Every positive (i, j) is classified against the negatives of its row i:
  # log(1 + n_i) + f_ij - log(e^{f_ij} + sum_{k in neg(i)} e^{f_ik}).
  neg_lse = jax.nn.logsumexp(jnp.where(neg, s, -jnp.inf), axis=1, keepdims=True)
  n_neg = jnp.sum(neg, axis=1, keepdims=True).astype(s.dtype)
  terms = jnp.log1p(n_neg) + s - jnp.logaddexp(s, neg_lse)
  return masked_mean(terms, pos)


MASKED_BOUNDS: dict[str, Callable[[Array, Array, Array], Array]] = {
    'jsd': _masked_jsd,
    'infonce': _masked_infonce,
    'dv': _masked_dv,
    'nwj': _masked_nwj,
}


def masked_bound(scores: Array, positive_mask: Array,
                 negative_mask: Optional[Array] = None, *,
                 bound: str = 'jsd') -> Array:
  """An MI bound on a rectangular score matrix with positives given by a mask.

  ``scores[i, j] = f(a_i, b_j)``; ``positive_mask[i, j]`` marks joint pairs,
  ``negative_mask`` (default: every other entry) marks product-of-marginals
  pairs; entries in neither (padding) are ignored. With E_P / E_N the means
  over the positive / negative entries:

  * jsd:     E_P[-sp(-f)] - E_N[sp(f)]
  * dv:      E_P[f] - log E_N[e^f]
  * nwj:     E_P[f] - E_N[e^{f - 1}]
  * infonce: E_P[log(1 + n_i) + f_ij - log(e^{f_ij} + sum_{k in N_i} e^{f_ik})],
    each positive classified against the n_i negatives of its own row.

  With the identity as ``positive_mask`` on a (K, K) matrix these are exactly
  ``bounds.jsd``, ``dv``, ``nwj`` and ``infonce``. Unlike multiplying scores by
  the mask (the original InfoGraph code, correct only for JSD, whose terms
  vanish at f = 0), masked entries never enter a log-sum-exp or a mean.

  Args:
    scores: (R, C) float scores.
    positive_mask: (R, C) bool.
    negative_mask: (R, C) bool or None (= ~positive_mask); must not overlap
      ``positive_mask``.
    bound: 'jsd', 'infonce', 'dv' or 'nwj'.

  Returns:
    Scalar estimate in nats (the training loss is its negative). There must
    be at least one positive and one negative pair (checked when the masks are
    concrete; InfoNCE needs a negative in every row that has a positive).
  """
  fn = registry.lookup(MASKED_BOUNDS, bound, 'masked bound')
  scores, pos, neg = _check_masked(scores, positive_mask, negative_mask)
  return fn(scores, pos, neg)


# -------------------------------------------------------------------- DGI --

class BilinearDiscriminator(nn.Module):
  """DGI's discriminator D(h_i, s) = h_i^T W s + b.

  W is initialised like ``torch.nn.Bilinear`` under DGI's Xavier init (fans
  d*d and d, so a much smaller scale than a (d, d) Glorot matrix); b = 0.
  ``infomax_jax.critics.Bilinear`` scores K x K pairs of equal-size batches;
  here N nodes face one summary, so W s is computed once.
  """

  @nn.compact
  def __call__(self, h: Array, summary: Array) -> Array:
    """(N, d) nodes and a (d,) summary -> (N,) scores."""
    d = h.shape[-1]
    if summary.shape != (d,):
      raise ValueError(f'BilinearDiscriminator: summary must have shape '
                       f'({d},), got {summary.shape}')
    init = lambda key, shape, dtype=jnp.float32: nn.initializers.xavier_uniform(
        in_axis=1, out_axis=0)(key, (1, *shape), dtype)[0]
    kernel = self.param('kernel', init, (d, d))
    bias = self.param('bias', nn.initializers.zeros, ())
    return h @ (kernel @ summary) + bias


class DGI(nn.Module):
  """Deep Graph Infomax (Velickovic et al. 2019) with a one-layer GCN encoder.

  Attributes:
    hidden: embedding width (512 in the paper for Cora and CiteSeer).
  """
  hidden: int = 512

  def setup(self):
    self.encoder = GCNLayer(self.hidden)
    self.discriminator = BilinearDiscriminator()

  def __call__(self, x: Features, adjacency: SparseMatrix,
               permutation: Array,
               node_mask: Optional[Array] = None) -> tuple[Array, Array]:
    """Discriminator scores of real and corrupted nodes against the summary.

    Args:
      x: (N, F) features, dense or sparse (plain or row-blocked).
      adjacency: (N, N) normalised adjacency (plain or row-blocked).
      permutation: (N,) row shuffle that corrupts the features.
      node_mask: optional (N,) bool, False on padding nodes (row-blocked
        graphs are padded to a multiple of the block count); the summary
        averages the real nodes only.

    Returns:
      (positive (N,), negative (N,)) scores.
    """
    h, h_corrupt = self.encoder(x, adjacency, row_permutation=permutation)
    s = (dgi_summary(h) if node_mask is None
         else jax.nn.sigmoid(mean_readout(h, node_mask)))
    return self.discriminator(h, s), self.discriminator(h_corrupt, s)

  def embed(self, x: Features, adjacency: SparseMatrix) -> Array:
    """The node embeddings h (N, hidden) used downstream."""
    return self.encoder(x, adjacency)


def dgi_objective(positive: Array, negative: Array,
                  bound: str = 'jsd', mask: Optional[Array] = None) -> Array:
  """DGI's objective: real (joint) vs corrupted (marginal) nodes against s.

  The scores form one row (the summary) against 2N columns, the N real nodes
  positive. With 'jsd' this is -2 x DGI's binary cross-entropy (same optimum
  and, under Adam, the same updates); 'infonce' classifies every real node
  against all N corrupted ones.

  Args:
    positive: (N,) scores D(h_i, s).
    negative: (M,) scores D(h~_j, s).
    bound: a name of ``MASKED_BOUNDS``.
    mask: optional (N,) bool (then M = N): only the nodes where it is True
      enter, as a positive and as a negative (padding nodes are False).

  Returns:
    Scalar estimate (loss = its negative).
  """
  if positive.ndim != 1 or negative.ndim != 1:
    raise ValueError(f'dgi_objective: positive and negative must be 1-D, got '
                     f'{positive.shape} and {negative.shape}')
  scores = jnp.concatenate([positive, negative])[None, :]
  if mask is None:
    pos = (jnp.arange(scores.shape[1]) < positive.shape[0])[None, :]
    return masked_bound(scores, pos, ~pos, bound=bound)
  if mask.shape != positive.shape or negative.shape != positive.shape:
    raise ValueError(f'dgi_objective: with a mask, positive, negative and mask '
                     f'must have one shape (N,), got {positive.shape}, '
                     f'{negative.shape} and {mask.shape}')
  none = jnp.zeros_like(mask)
  return masked_bound(scores, jnp.concatenate([mask, none])[None, :],
                      jnp.concatenate([none, mask])[None, :], bound=bound)


@dataclasses.dataclass
class DGIResult:
  """The outcome of ``train_dgi``.

  Attributes:
    params: parameters of the epoch with the lowest training loss.
    best_epoch: that epoch (0-based).
    losses: training loss of every epoch run.
    train_seconds: wall time of the ``train.train`` call minus compilation
      (the epochs, checkpoints and progress lines).
    compile_seconds: time spent compiling during the call.
    train_cpu_seconds: CPU time of this process during the call (all
      threads, compilation included; unlike wall time, insensitive to other
      load on the machine).
  """
  params: PyTree
  best_epoch: int
  losses: list[float]
  train_seconds: float
  compile_seconds: float
  train_cpu_seconds: float


def dgi_task(data: Planetoid, *, hidden: int = 512, patience: int = 20,
             max_epochs: int = 10000, bound: str = 'jsd',
             num_blocks: int = 1) -> train_lib.Task:
  """DGI as a ``train.Task``: one full-graph step per epoch, early stopping.

  Data parallelism on one graph: the "batch" of every step is the graph's
  node set. The nodes are padded to a multiple of ``num_blocks`` (the device
  count) and the rows of the features X and of Â are cut into ``num_blocks``
  row blocks (``row_blocks``); ``train.train`` shards the blocks, the node
  mask and the corruption permutation over the devices, so each device
  computes X W, the real and the corrupted GCN outputs and the discriminator
  scores of its own nodes. X W is all-gathered for the neighbour sums (Â's
  columns span the whole graph), and the summary and the objective are
  reductions over all (real) nodes; parameters are replicated. The graph
  itself is replicated in device memory (``Task.data``): this divides the
  compute, not the graph's memory. With ``num_blocks=1`` it is the plain
  full-batch computation.

  Early stopping as the reference implementation, inside the jitted step
  (``aux``): the loss of epoch e is computed with the parameters before the
  update; the lowest loss, its epoch and its parameters are kept; training
  stops once ``patience`` epochs passed without improvement (``Task.stop``
  ends the loop after that chunk; the chunk's remaining steps leave the state
  unchanged and report the last loss).

  Args:
    data: the graph.
    hidden: embedding width.
    patience: epochs without improvement before stopping.
    max_epochs: hard limit (the length of the per-epoch loss buffer).
    bound: objective, a name of ``MASKED_BOUNDS``.
    num_blocks: row blocks of the graph (the number of devices).

  Returns:
    The task; ``aux`` holds best_params, best_loss, best_epoch, epochs (run),
    stopped, and losses (max_epochs,) per epoch.
  """
  registry.lookup(MASKED_BOUNDS, bound, 'masked bound')
  model = DGI(hidden)
  n = data.num_nodes
  n_pad = -(-n // num_blocks) * num_blocks
  adjacency = data.adjacency()
  graph = {
      'x': row_blocks(data.features, num_blocks, num_rows=n_pad),
      'adjacency': row_blocks(adjacency, num_blocks, num_rows=n_pad,
                              num_cols=n_pad),
      'node_mask': np.arange(n_pad) < n,
  }

  def init(key):
    params = jax.jit(model.init)(key, data.features, adjacency, jnp.arange(n))
    aux = {
        # A copy: the state is donated, and one buffer may not appear twice.
        'best_params': jax.tree.map(jnp.copy, params),
        'best_loss': jnp.full((), jnp.inf, jnp.float32),
        'best_epoch': jnp.zeros((), jnp.int32),
        'epochs': jnp.zeros((), jnp.int32),
        'stopped': jnp.zeros((), bool),
        'losses': jnp.zeros((max_epochs,), jnp.float32),
    }
    return params, aux

  def sample(graph, key):
    # The corruption: a fresh row shuffle of the real nodes per epoch.
    perm = jnp.concatenate([jax.random.permutation(key, n),
                            jnp.arange(n, n_pad)]).astype(jnp.int32)
    return {**graph, 'permutation': perm}

  def loss_fn(params, batch):
    # Without padding nodes (N divisible by the block count, e.g. one
    # device), the plain full-graph program.
    mask = batch['node_mask'] if n_pad != n else None
    pos, neg = model.apply(params, batch['x'], batch['adjacency'],
                           batch['permutation'], mask)
    return -dgi_objective(pos, neg, bound, mask=mask)

  def update(state, batch, key, tx):
    del key
    aux, epoch = state.aux, state.step

    def step(_):
      loss, grads = jax.value_and_grad(loss_fn)(state.params, batch)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      better = loss < aux['best_loss']
      best_epoch = jnp.where(better, epoch, aux['best_epoch'])
      new_aux = {
          'best_params': jax.tree.map(lambda new, old: jnp.where(better, new, old),
                                      state.params, aux['best_params']),
          'best_loss': jnp.where(better, loss, aux['best_loss']),
          'best_epoch': best_epoch,
          'epochs': epoch + 1,
          'stopped': epoch - best_epoch >= patience,
          'losses': aux['losses'].at[epoch].set(loss),
      }
      return state.replace(params=optax.apply_updates(state.params, updates),
                           opt_state=opt_state, aux=new_aux), loss

    def frozen(_):
      return state, aux['losses'][aux['epochs'] - 1]

    state, loss = jax.lax.cond(aux['stopped'], frozen, step, None)
    return state, {'loss': loss, 'best_loss': state.aux['best_loss']}

  return train_lib.Task(init=init, sample=sample, data=graph, update=update,
                        stop=lambda state: bool(state.aux['stopped']))


def dgi_config(data: Planetoid, *, seed: int, learning_rate: float,
               max_epochs: int, num_blocks: int, log_every: int = 10,
               checkpoint_every: int = 100) -> ml_collections.ConfigDict:
  """The ``train.train`` config of ``dgi_task``: one step per epoch.

  ``batch_size`` is the padded node count (the node set is the batch);
  ``checkpoint_every`` is rounded up to a multiple of ``log_every``.
  """
  n_pad = -(-data.num_nodes // num_blocks) * num_blocks
  return ml_collections.ConfigDict(dict(
      seed=seed, num_steps=max_epochs, batch_size=n_pad,
      learning_rate=learning_rate, optimizer='adam', log_every=log_every,
      eval_every=max_epochs,
      checkpoint_every=-(-checkpoint_every // log_every) * log_every,
      keep_checkpoints=1))


def _timed_train(config, task, workdir, mesh, verbose):
  """``train.train`` in ``workdir`` (a temporary folder if None), timed."""
  c0, t0, p0 = (train_lib.compile_seconds(), time.perf_counter(),
                time.process_time())
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory())
    state = train_lib.train(config, task, workdir, mesh=mesh, verbose=verbose)
    records = runs.read_metrics(workdir, 'train')
  compile_s = train_lib.compile_seconds() - c0
  times = (time.perf_counter() - t0 - compile_s, compile_s,
           time.process_time() - p0)
  return state, records, times


def train_dgi(data: Planetoid, *, hidden: int = 512,
              learning_rate: float = 1e-3, patience: int = 20,
              max_epochs: int = 10000, seed: int = 0, bound: str = 'jsd',
              workdir: Optional[str] = None, mesh=None, log_every: int = 10,
              checkpoint_every: int = 100, verbose: bool = True) -> DGIResult:
  """Trains DGI full-batch with Adam, early-stopped on the training loss.

  As the reference implementation: one step per epoch on the whole graph,
  a fresh row shuffle per epoch, and training stops when the loss has not
  improved for ``patience`` epochs; the parameters of the best epoch are
  returned. Runs ``dgi_task`` through ``train.train`` on ``mesh`` (default:
  every device; the graph's nodes are split over them, see ``dgi_task``),
  checkpointing to ``workdir`` and resuming from it.

  Args:
    data: the graph.
    hidden: embedding width.
    learning_rate: Adam step size.
    patience: epochs without improvement before stopping.
    max_epochs: hard limit (a multiple of ``log_every``).
    seed: PRNG seed (init and corruptions).
    bound: objective, a name of ``MASKED_BOUNDS``.
    workdir: checkpoints and metrics.jsonl (a rerun resumes); None: a
      temporary folder, deleted afterwards.
    mesh: the ``'data'`` mesh (default ``parallel.make_mesh()``).
    log_every: epochs per jitted chunk (and progress line).
    checkpoint_every: epochs between checkpoints.
    verbose: print progress lines.

  Returns:
    A ``DGIResult``.
  """
  mesh = mesh or parallel.make_mesh()
  num_blocks = mesh.shape[parallel.DATA_AXIS]
  task = dgi_task(data, hidden=hidden, patience=patience,
                  max_epochs=max_epochs, bound=bound, num_blocks=num_blocks)
  config = dgi_config(data, seed=seed, learning_rate=learning_rate,
                      max_epochs=max_epochs, num_blocks=num_blocks,
                      log_every=log_every, checkpoint_every=checkpoint_every)
  state, _, (train_s, compile_s, cpu_s) = _timed_train(
      config, task, workdir, mesh, verbose)
  aux = jax.device_get(state.aux)
  epochs = int(aux['epochs'])
  return DGIResult(aux['best_params'], int(aux['best_epoch']),
                   [float(v) for v in aux['losses'][:epochs]], train_s,
                   compile_s, cpu_s)


def dgi_embeddings(params: PyTree, data: Planetoid, hidden: int) -> np.ndarray:
  """(N, hidden) node embeddings of a trained ``DGI`` on the real graph."""
  model = DGI(hidden)
  fn = jax.jit(lambda p, x, a: model.apply(p, x, a, method=DGI.embed))
  return np.asarray(fn(params, data.features, data.adjacency()))


def logreg_probe(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *,
                 num_classes: int, num_runs: int, seed: int = 0,
                 epochs: int = 100, learning_rate: float = 0.01,
                 weight_decay: float = 0.0) -> np.ndarray:
  """DGI's evaluation: logistic regression on frozen features, repeated.

  Each run: a linear layer (Glorot-uniform W, zero b), full-batch Adam on the
  mean cross-entropy for ``epochs`` steps, then test accuracy. Runs differ in
  their initialisation only; all are one vmapped, jitted computation.

  Args:
    train_x: (n_train, d) features; train_y: (n_train,) int labels.
    test_x: (n_test, d) features; test_y: (n_test,) int labels.
    num_classes: number of classes.
    num_runs: repetitions.
    seed: PRNG seed of the initialisations.
    epochs: Adam steps per run.
    learning_rate: Adam step size.
    weight_decay: L2 coefficient added to the gradient (PyTorch Adam style).

  Returns:
    (num_runs,) test accuracies in [0, 1].
  """
  train_x, test_x = (jnp.asarray(a, jnp.float32) for a in (train_x, test_x))
  train_y, test_y = (jnp.asarray(a, jnp.int32) for a in (train_y, test_y))
  if (train_x.ndim != 2 or test_x.ndim != 2
      or train_x.shape[1] != test_x.shape[1]):
    raise ValueError(f'train_x and test_x must be (n, d) with one d, got '
                     f'{train_x.shape} and {test_x.shape}')
  if train_y.shape != train_x.shape[:1] or test_y.shape != test_x.shape[:1]:
    raise ValueError(f'labels must have shapes ({train_x.shape[0]},) and '
                     f'({test_x.shape[0]},), got {train_y.shape} and '
                     f'{test_y.shape}')
  d = train_x.shape[1]
  tx = optax.chain(optax.add_decayed_weights(weight_decay),
                   optax.adam(learning_rate))

  def one_run(key):
    params = {'w': nn.initializers.xavier_uniform()(key, (d, num_classes)),
              'b': jnp.zeros((num_classes,))}

    def loss_fn(p):
      logits = train_x @ p['w'] + p['b']
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, train_y).mean()

    def body(carry, _):
      p, s = carry
      g = jax.grad(loss_fn)(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None,
                                  length=epochs)
    pred = jnp.argmax(test_x @ params['w'] + params['b'], axis=1)
    return jnp.mean(pred == test_y)

  keys = jax.random.split(jax.random.PRNGKey(seed), num_runs)
  return np.asarray(jax.jit(jax.vmap(one_run))(keys))


# -------------------------------------------------------------- InfoGraph --

class FeedForward(nn.Module):
  """InfoGraph's projection head: 3 x (Dense, ReLU) plus a linear shortcut."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    d = x.shape[-1]
    h = x
    for i in range(3):
      h = nn.relu(nn.Dense(d, kernel_init=_glorot, name=f'block_{i}')(h))
    return h + nn.Dense(d, kernel_init=_glorot, name='shortcut')(x)


class GINEncoder(nn.Module):
  """InfoGraph's encoder: GIN layers, each followed by ReLU and batch norm.

  Node ("patch") representations concatenate every layer's output; the graph
  representation concatenates every layer's per-graph sum pool (jumping
  knowledge), so both have width hidden * num_layers.

  Attributes:
    hidden: width of every layer.
    num_layers: number of GIN layers.
  """
  hidden: int = 32
  num_layers: int = 4

  @nn.compact
  def __call__(self, batch: GraphBatch, train: bool) -> tuple[Array, Array]:
    """(graph (g_pad, hidden * num_layers), node (n_pad, ...)) features."""
    x, layers = batch.x, []
    mask = batch.node_mask[:, None]
    for i in range(self.num_layers):
      x = nn.relu(GINLayer(self.hidden, name=f'gin_{i}')(x, batch.adjacency))
      # PyTorch BatchNorm1d defaults: momentum 0.1, eps 1e-5.
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       epsilon=1e-5, name=f'batch_norm_{i}')(
                           x, mask=jnp.broadcast_to(mask, x.shape))
      layers.append(x)
    nodes = jnp.concatenate(layers, axis=-1)
    graphs = sum_readout(nodes, batch.node_graph, batch.num_graphs,
                         batch.node_mask)
    return graphs, nodes


class InfoGraph(nn.Module):
  """InfoGraph (Sun et al. 2020): node vs graph scores across a batch.

  Attributes:
    hidden: GIN width.
    num_layers: GIN depth.
  """
  hidden: int = 32
  num_layers: int = 4

  def setup(self):
    self.encoder = GINEncoder(self.hidden, self.num_layers)
    self.local_head = FeedForward()
    self.global_head = FeedForward()

  def __call__(self, batch: GraphBatch, train: bool = True) -> Array:
    """(n_pad, g_pad) scores <local_head(node_i), global_head(graph_g)>."""
    graphs, nodes = self.encoder(batch, train)
    return self.local_head(nodes) @ self.global_head(graphs).T

  def embed(self, batch: GraphBatch) -> Array:
    """(g_pad, hidden * num_layers) graph embeddings (inference mode)."""
    return self.encoder(batch, False)[0]


def infograph_masks(batch: GraphBatch) -> tuple[Array, Array]:
  """(positive, negative) (n_pad, g_pad) masks: node i in graph g or not.

  Padding nodes and graph slots are in neither.
  """
  same = batch.node_graph[:, None] == jnp.arange(batch.num_graphs)[None, :]
  valid = batch.node_mask[:, None] & batch.graph_mask[None, :]
  return same & valid, ~same & valid


def infograph_objective(scores: Array, batch: GraphBatch,
                        bound: str = 'jsd') -> Array:
  """InfoGraph's local-global objective on (n_pad, g_pad) scores."""
  pos, neg = infograph_masks(batch)
  return masked_bound(scores, pos, neg, bound=bound)


@dataclasses.dataclass
class InfoGraphResult:
  """The outcome of ``train_infograph``.

  Attributes:
    variables: final {'params', 'batch_stats'}.
    losses: mean training loss of every epoch.
    train_seconds: wall time of the ``train.train`` call minus compilation.
    compile_seconds: time spent compiling during the call.
    train_cpu_seconds: CPU time of this process during the call (all
      threads, compilation included; unlike wall time, insensitive to other
      load on the machine).
  """
  variables: PyTree
  losses: list[float]
  train_seconds: float
  compile_seconds: float
  train_cpu_seconds: float


def infograph_init(dataset: TUDataset, *, hidden: int, num_layers: int,
                   batch_size: int, seed: int) -> PyTree:
  """The initial variables of ``train_infograph(dataset, seed=seed, ...)``.

  (``train.train`` initialises with the first half of
  ``split(PRNGKey(seed))``; the shapes do not depend on the batch.)
  """
  key = jax.random.split(jax.random.PRNGKey(seed))[0]
  return _infograph_init(InfoGraph(hidden, num_layers), dataset, batch_size,
                         key)


def _infograph_init(model: 'InfoGraph', dataset: TUDataset, batch_size: int,
                    key: Array) -> PyTree:
  n_pad, e_pad = padded_sizes(dataset, batch_size)
  batch = batch_graphs(dataset, np.arange(min(batch_size, dataset.num_graphs)),
                       num_nodes=n_pad, num_edges=e_pad, num_graphs=batch_size)
  return jax.jit(lambda key, b: model.init(key, b, train=False))(key, batch)


def infograph_steps_per_epoch(num_graphs: int, batch_size: int) -> int:
  """Batches per epoch: the full ones, and the last one unless it has < 2
  graphs (negatives come from the other graphs of a batch)."""
  return num_graphs // batch_size + (num_graphs % batch_size >= 2)


def infograph_task(dataset: TUDataset, *, hidden: int = 32,
                   num_layers: int = 4, batch_size: int = 128,
                   bound: str = 'jsd', seed: int = 0,
                   num_blocks: int = 1) -> train_lib.Task:
  """InfoGraph as a ``train.Task``: one step per mini-batch of graphs.

  Epochs as PyTorch's shuffling DataLoader: a fresh permutation of the graphs
  per epoch (from ``seed``), cut into batches of ``batch_size``; the last,
  smaller batch is kept (dropped if it has a single graph). Data parallelism:
  the ``batch_size`` graph slots of a step are dealt round-robin into
  ``num_blocks`` blocks (the device count) and every block is padded to the
  node and edge counts of its ``batch_size / num_blocks`` largest possible
  graphs, so shapes are fixed (one compilation) and ``train.train`` shards the
  blocks over the devices (``device_graph_batch``). The objective is the
  node-vs-graph bound of the whole batch, as on one device.

  Args:
    dataset: the graphs (labels unused).
    hidden: GIN width.
    num_layers: GIN depth.
    batch_size: graphs per batch (a multiple of ``num_blocks``).
    bound: objective, a name of ``MASKED_BOUNDS``.
    seed: seed of the shuffling (initialisation: ``train.train``'s key).
    num_blocks: B, the number of devices.

  Returns:
    The task (``sample_takes_step``; ``aux`` is the batch statistics).
  """
  registry.lookup(MASKED_BOUNDS, bound, 'masked bound')
  if batch_size < 2:
    raise ValueError(f'batch_size must be >= 2 (negatives come from other '
                     f'graphs of the batch), got {batch_size}')
  if batch_size % num_blocks:
    raise ValueError(f'batch_size ({batch_size}) must be divisible by the '
                     f'number of blocks / devices ({num_blocks})')
  model = InfoGraph(hidden, num_layers)
  num_graphs = dataset.num_graphs
  per_block = batch_size // num_blocks
  n_block, e_block = padded_sizes(dataset, per_block)
  steps_per_epoch = infograph_steps_per_epoch(num_graphs, batch_size)
  data = {**tu_arrays(dataset),
          'shuffle_key': jax.random.fold_in(jax.random.PRNGKey(seed), 1)}

  def init(key):
    variables = _infograph_init(model, dataset, batch_size, key)
    return variables['params'], variables['batch_stats']

  def sample(data, key, step):
    del key
    epoch, position = step // steps_per_epoch, step % steps_per_epoch
    order = jax.random.permutation(
        jax.random.fold_in(data['shuffle_key'], epoch), num_graphs)
    order = jnp.concatenate([order.astype(jnp.int32),
                             jnp.full((batch_size,), -1, jnp.int32)])
    ids = jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))
    # Round-robin: batch position p goes to block p % B (balanced blocks).
    ids = ids.reshape(per_block, num_blocks).T
    return device_graph_batch(data, ids, num_nodes=n_block, num_edges=e_block)

  def loss(params, batch_stats, batch, key):
    del key
    scores, updates = model.apply({'params': params, 'batch_stats': batch_stats},
                                  batch, train=True, mutable=['batch_stats'])
    return (-infograph_objective(scores, batch, bound),
            ({}, updates['batch_stats']))

  return train_lib.Task(init=init, sample=sample, loss=loss, data=data,
                        sample_takes_step=True)


def infograph_config(dataset: TUDataset, *, seed: int, batch_size: int,
                     epochs: int, learning_rate: float,
                     checkpoint_every_epochs: int = 5
                     ) -> ml_collections.ConfigDict:
  """The ``train.train`` config of ``infograph_task``: one chunk per epoch."""
  steps = infograph_steps_per_epoch(dataset.num_graphs, batch_size)
  return ml_collections.ConfigDict(dict(
      seed=seed, num_steps=epochs * steps, batch_size=batch_size,
      learning_rate=learning_rate, optimizer='adam', log_every=steps,
      eval_every=epochs * steps,
      checkpoint_every=checkpoint_every_epochs * steps, keep_checkpoints=1))


def train_infograph(dataset: TUDataset, *, hidden: int = 32,
                    num_layers: int = 4, batch_size: int = 128,
                    epochs: int = 20, learning_rate: float = 0.01,
                    seed: int = 0, bound: str = 'jsd',
                    workdir: Optional[str] = None, mesh=None,
                    checkpoint_every_epochs: int = 5,
                    verbose: bool = True) -> InfoGraphResult:
  """Trains InfoGraph with Adam on shuffled mini-batches of graphs.

  Runs ``infograph_task`` through ``train.train`` on ``mesh`` (default: every
  device; each step's graphs are split over them), checkpointing to
  ``workdir`` and resuming from it. Every batch is padded to the same sizes
  (one compiled step); the last, smaller batch of an epoch is kept, as
  PyTorch's DataLoader does.

  Args:
    dataset: the graphs (labels unused).
    hidden: GIN width.
    num_layers: GIN depth.
    batch_size: graphs per batch (a multiple of the device count).
    epochs: passes over the data.
    learning_rate: Adam step size.
    seed: PRNG seed (init and shuffling).
    bound: objective, a name of ``MASKED_BOUNDS``.
    workdir: checkpoints and metrics.jsonl (one line per epoch; a rerun
      resumes); None: a temporary folder, deleted afterwards.
    mesh: the ``'data'`` mesh (default ``parallel.make_mesh()``).
    checkpoint_every_epochs: epochs between checkpoints.
    verbose: print a progress line per epoch.

  Returns:
    An ``InfoGraphResult``.
  """
  mesh = mesh or parallel.make_mesh()
  task = infograph_task(dataset, hidden=hidden, num_layers=num_layers,
                        batch_size=batch_size, bound=bound, seed=seed,
                        num_blocks=mesh.shape[parallel.DATA_AXIS])
  config = infograph_config(dataset, seed=seed, batch_size=batch_size,
                            epochs=epochs, learning_rate=learning_rate,
                            checkpoint_every_epochs=checkpoint_every_epochs)
  state, records, (train_s, compile_s, cpu_s) = _timed_train(
      config, task, workdir, mesh, verbose)
  variables = jax.device_get({'params': state.params,
                              'batch_stats': state.aux})
  return InfoGraphResult(variables, [r['loss'] for r in records], train_s,
                         compile_s, cpu_s)


def infograph_embeddings(variables: PyTree, dataset: TUDataset, *, hidden: int,
                         num_layers: int) -> np.ndarray:
  """(G, hidden * num_layers) embeddings of every graph, inference mode."""
  batch = batch_graphs(dataset, np.arange(dataset.num_graphs),
                       num_nodes=dataset.num_nodes,
                       num_edges=int(dataset.edges.shape[0]),
                       num_graphs=dataset.num_graphs)
  model = InfoGraph(hidden, num_layers)
  fn = jax.jit(lambda v, b: model.apply(v, b, method=InfoGraph.embed))
  return np.asarray(fn(variables, batch))
