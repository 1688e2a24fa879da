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

References:
  Velickovic et al., "Deep Graph Infomax", ICLR 2019.
  Sun et al., "InfoGraph: Unsupervised and Semi-supervised Graph-Level
  Representation Learning via Mutual Information Maximization", ICLR 2020.
  Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional
  Networks", ICLR 2017 (the Planetoid preprocessing and GCN normalisation).
"""

import collections
import dataclasses
import io
import os
import pickle
import time
from typing import Any, Callable, Optional, Sequence, Union

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from infomax_jax import bounds
from infomax_jax import data as data_lib
from infomax_jax import registry

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

  Attributes:
    rows: (nnz,) int32 row indices.
    cols: (nnz,) int32 column indices.
    values: (nnz,) float values.
    shape: (M, N), static.
    rows_sorted: whether ``rows`` is non-decreasing (a faster segment sum).
  """
  rows: Array
  cols: Array
  values: Array
  shape: tuple[int, int] = flax.struct.field(pytree_node=False)
  rows_sorted: bool = flax.struct.field(pytree_node=False, default=False)

  @property
  def nnz(self) -> int:
    return int(self.rows.shape[0])

  def to_dense(self) -> np.ndarray:
    """The dense (M, N) numpy array (for tests and small graphs)."""
    out = np.zeros(self.shape, np.asarray(self.values).dtype)
    np.add.at(out, (np.asarray(self.rows), np.asarray(self.cols)),
              np.asarray(self.values))
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
  vals = a.values.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
  return jax.ops.segment_sum(vals * x[a.cols], a.rows, num_segments=a.shape[0],
                             indices_are_sorted=a.rows_sorted)


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
               permutation: Array) -> tuple[Array, Array]:
    """Discriminator scores of real and corrupted nodes against the summary.

    Args:
      x: (N, F) features, dense or sparse.
      adjacency: (N, N) normalised adjacency.
      permutation: (N,) row shuffle that corrupts the features.

    Returns:
      (positive (N,), negative (N,)) scores.
    """
    h, h_corrupt = self.encoder(x, adjacency, row_permutation=permutation)
    s = dgi_summary(h)
    return self.discriminator(h, s), self.discriminator(h_corrupt, s)

  def embed(self, x: Features, adjacency: SparseMatrix) -> Array:
    """The node embeddings h (N, hidden) used downstream."""
    return self.encoder(x, adjacency)


def dgi_objective(positive: Array, negative: Array,
                  bound: str = 'jsd') -> Array:
  """DGI's objective: real (joint) vs corrupted (marginal) nodes against s.

  The scores form one row (the summary) against 2N columns, the N real nodes
  positive. With 'jsd' this is -2 x DGI's binary cross-entropy (same optimum
  and, under Adam, the same updates); 'infonce' classifies every real node
  against all N corrupted ones.

  Args:
    positive: (N,) scores D(h_i, s).
    negative: (M,) scores D(h~_j, s).
    bound: a name of ``MASKED_BOUNDS``.

  Returns:
    Scalar estimate (loss = its negative).
  """
  if positive.ndim != 1 or negative.ndim != 1:
    raise ValueError(f'dgi_objective: positive and negative must be 1-D, got '
                     f'{positive.shape} and {negative.shape}')
  scores = jnp.concatenate([positive, negative])[None, :]
  mask = (jnp.arange(scores.shape[1]) < positive.shape[0])[None, :]
  return masked_bound(scores, mask, ~mask, bound=bound)


@dataclasses.dataclass
class DGIResult:
  """The outcome of ``train_dgi``.

  Attributes:
    params: parameters of the epoch with the lowest training loss.
    best_epoch: that epoch (0-based).
    losses: training loss of every epoch run.
    train_seconds: wall time of the epochs (after compilation).
    compile_seconds: time to compile the step.
    train_cpu_seconds: CPU time of this process during the epochs (all
      threads; unlike wall time, insensitive to other load on the machine).
  """
  params: PyTree
  best_epoch: int
  losses: list[float]
  train_seconds: float
  compile_seconds: float
  train_cpu_seconds: float


def train_dgi(data: Planetoid, *, hidden: int = 512,
              learning_rate: float = 1e-3, patience: int = 20,
              max_epochs: int = 10000, seed: int = 0, bound: str = 'jsd',
              log: Optional[Callable[[int, float, int], None]] = None,
              log_every: int = 10) -> DGIResult:
  """Trains DGI full-batch with Adam, early-stopped on the training loss.

  As the reference implementation: one step per epoch on the whole graph,
  a fresh row shuffle per epoch (from ``fold_in(key, epoch)``), and training
  stops when the loss has not improved for ``patience`` epochs; the
  parameters of the best epoch are returned.

  Args:
    data: the graph.
    hidden: embedding width.
    learning_rate: Adam step size.
    patience: epochs without improvement before stopping.
    max_epochs: hard limit.
    seed: PRNG seed (init and corruptions).
    bound: objective, a name of ``MASKED_BOUNDS``.
    log: optional ``(epoch, loss, best_epoch)`` callback, every ``log_every``.
    log_every: epochs between ``log`` calls.

  Returns:
    A ``DGIResult``.
  """
  registry.lookup(MASKED_BOUNDS, bound, 'masked bound')
  model = DGI(hidden)
  x, adjacency = data.features, data.adjacency()
  n = data.num_nodes
  key = jax.random.PRNGKey(seed)
  init_key, corrupt_key = jax.random.split(key)
  params = jax.jit(model.init)(init_key, x, adjacency, jnp.arange(n))
  tx = optax.adam(learning_rate)
  opt_state = tx.init(params)

  def step(params, opt_state, x, adjacency, epoch):
    perm = jax.random.permutation(jax.random.fold_in(corrupt_key, epoch), n)

    def loss_fn(p):
      pos, neg = model.apply(p, x, adjacency, perm)
      return -dgi_objective(pos, neg, bound)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  t0 = time.perf_counter()
  step = jax.jit(step).lower(params, opt_state, x, adjacency, 0).compile()
  compile_seconds = time.perf_counter() - t0

  best, best_epoch, best_params, losses = np.inf, 0, params, []
  t0, c0 = time.perf_counter(), time.process_time()
  for epoch in range(max_epochs):
    new_params, opt_state, loss = step(params, opt_state, x, adjacency, epoch)
    loss = float(loss)
    if not np.isfinite(loss):
      raise FloatingPointError(f'DGI loss became {loss} at epoch {epoch}')
    losses.append(loss)
    if loss < best:   # the loss was computed with `params`, before the update
      best, best_epoch, best_params = loss, epoch, params
    params = new_params
    if log is not None and (epoch % log_every == 0):
      log(epoch, loss, best_epoch)
    if epoch - best_epoch >= patience:
      break
  return DGIResult(best_params, best_epoch, losses,
                   time.perf_counter() - t0, compile_seconds,
                   time.process_time() - c0)


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
    train_seconds: wall time of the epochs (after compilation).
    compile_seconds: time to compile the step.
    train_cpu_seconds: CPU time of this process during the epochs (all
      threads; unlike wall time, insensitive to other load on the machine).
  """
  variables: PyTree
  losses: list[float]
  train_seconds: float
  compile_seconds: float
  train_cpu_seconds: float


def infograph_init(dataset: TUDataset, *, hidden: int, num_layers: int,
                   batch_size: int, seed: int) -> PyTree:
  """Initial InfoGraph variables for batches of ``batch_size`` graphs."""
  n_pad, e_pad = padded_sizes(dataset, batch_size)
  batch = batch_graphs(dataset, np.arange(min(batch_size, dataset.num_graphs)),
                       num_nodes=n_pad, num_edges=e_pad, num_graphs=batch_size)
  model = InfoGraph(hidden, num_layers)
  return jax.jit(lambda key, b: model.init(key, b, train=False))(
      jax.random.PRNGKey(seed), batch)


def train_infograph(dataset: TUDataset, *, hidden: int = 32,
                    num_layers: int = 4, batch_size: int = 128,
                    epochs: int = 20, learning_rate: float = 0.01,
                    seed: int = 0,
                    bound: str = 'jsd',
                    log: Optional[Callable[[int, float], None]] = None
                    ) -> InfoGraphResult:
  """Trains InfoGraph with Adam on shuffled mini-batches of graphs.

  Every batch is padded to the same sizes (one compiled step); the last,
  smaller batch of an epoch is kept, as PyTorch's DataLoader does.

  Args:
    dataset: the graphs (labels unused).
    hidden: GIN width.
    num_layers: GIN depth.
    batch_size: graphs per batch.
    epochs: passes over the data.
    learning_rate: Adam step size.
    seed: PRNG seed (init and shuffling).
    bound: objective, a name of ``MASKED_BOUNDS``.
    log: optional ``(epoch, mean_loss)`` callback after every epoch.

  Returns:
    An ``InfoGraphResult``.
  """
  registry.lookup(MASKED_BOUNDS, bound, 'masked bound')
  if batch_size < 2:
    raise ValueError(f'batch_size must be >= 2 (negatives come from other '
                     f'graphs of the batch), got {batch_size}')
  model = InfoGraph(hidden, num_layers)
  n_pad, e_pad = padded_sizes(dataset, batch_size)
  variables = infograph_init(dataset, hidden=hidden, num_layers=num_layers,
                             batch_size=batch_size, seed=seed)
  params, batch_stats = variables['params'], variables['batch_stats']
  tx = optax.adam(learning_rate)
  opt_state = tx.init(params)

  def step(params, batch_stats, opt_state, batch):
    def loss_fn(p):
      scores, updates = model.apply({'params': p, 'batch_stats': batch_stats},
                                    batch, train=True, mutable=['batch_stats'])
      return -infograph_objective(scores, batch, bound), updates['batch_stats']

    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  def make_batch(ids):
    return batch_graphs(dataset, ids, num_nodes=n_pad, num_edges=e_pad,
                        num_graphs=batch_size)

  t0 = time.perf_counter()
  step = jax.jit(step).lower(params, batch_stats, opt_state,
                             make_batch(np.arange(2))).compile()
  compile_seconds = time.perf_counter() - t0
  rng = np.random.default_rng(seed)
  losses = []
  t0, c0 = time.perf_counter(), time.process_time()
  for epoch in range(epochs):
    order = rng.permutation(dataset.num_graphs)
    epoch_losses = []
    for start in range(0, dataset.num_graphs, batch_size):
      ids = order[start:start + batch_size]
      if ids.size < 2:
        continue
      params, batch_stats, opt_state, loss = step(params, batch_stats,
                                                  opt_state, make_batch(ids))
      epoch_losses.append(float(loss))
    mean_loss = float(np.mean(epoch_losses))
    if not np.isfinite(mean_loss):
      raise FloatingPointError(f'InfoGraph loss became {mean_loss} at epoch '
                               f'{epoch}')
    losses.append(mean_loss)
    if log is not None:
      log(epoch, mean_loss)
  return InfoGraphResult({'params': params, 'batch_stats': batch_stats}, losses,
                         time.perf_counter() - t0, compile_seconds,
                         time.process_time() - c0)


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
