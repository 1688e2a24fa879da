"""Planetoid citation graphs (Cora, CiteSeer) from the original pickles.

The ``ind.<name>.*`` files of Yang et al. (2016) are pickles written by
Python 2 with numpy and scipy. They are read by a restricted unpickler that
builds only the numpy arrays, scipy CSR matrices and adjacency-list dicts those
files hold; any other global a pickle names (``os.system``, ``eval``, ...)
raises ``UnsafePickleError`` before anything runs. The preprocessing follows
Kipf & Welling (2017) and DGI: row-normalised features, a symmetrised graph
without duplicates or self-loops, the public train / val / test split.
"""

import collections
import dataclasses
import io
import os
import pickle
from typing import Any, Optional

import numpy as np

from infomax_jax.graphs import files
from infomax_jax.graphs import sparse

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


class _NdarrayType:
  """Stands for ``numpy.ndarray`` in a data pickle: a valid ``subtype`` for
  ``_reconstruct``, but not callable (``numpy.ndarray(shape, 'O')`` would
  build an object array around the dtype check)."""

  def __call__(self, *args: Any, **kwargs: Any) -> None:
    raise UnsafePickleError(
        f'a data pickle may not call numpy.ndarray{args!r}: only '
        '_reconstruct (with a checked dtype) may build arrays')


_NDARRAY = _NdarrayType()


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
  if subtype is _NDARRAY:
    subtype = np.ndarray
  if subtype is not np.ndarray:
    raise UnsafePickleError(
        f'_reconstruct may only build numpy.ndarray, got {subtype!r}')
  return _numpy_reconstruct()(subtype, shape, _safe_dtype(dtype))


# (module, name) -> what it resolves to. Python-2 pickles name '__builtin__'
# and 'numpy.core'; scipy >= 1.8 pickles name 'scipy.sparse._csr'.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ('numpy.core.multiarray', '_reconstruct'): _safe_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _safe_reconstruct,
    ('numpy', 'ndarray'): _NDARRAY,
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
  features: sparse.SparseMatrix
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

  def adjacency(self) -> sparse.SparseMatrix:
    """Â = D^-1/2 (A + I) D^-1/2 as a sparse operator."""
    return sparse.normalized_adjacency(self.edges, self.num_nodes)


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
  folder = os.path.join(files.resolve_data_dir(data_dir), 'planetoid')
  paths = {p: os.path.join(folder, f'ind.{name}.{p}')
           for p in (*_PLANETOID_PARTS, 'test.index')}
  files.require_files(list(paths.values()), f'Planetoid {name}')
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
  features = sparse.row_normalize(sparse.sparse_from_coo(
      np.concatenate([r1, r2]), np.concatenate([c1, c2]),
      np.concatenate([v1, v2]), (num_nodes, num_features)))

  num_classes = ally.shape[1]
  onehot = np.zeros((num_nodes, num_classes), np.float32)
  onehot[:ally.shape[0]] = ally
  onehot[test_index] = ty
  labels = np.where(onehot.sum(axis=1) > 0, onehot.argmax(axis=1), -1)

  pairs = [(int(u), int(v)) for u, nbrs in graph.items() for v in nbrs]
  edges = sparse.undirected_edges(np.array(pairs, np.int64), num_nodes)
  return Planetoid(
      name=name, features=features, labels=labels.astype(np.int32),
      edges=edges,
      train_index=np.arange(y.shape[0], dtype=np.int32),
      val_index=np.arange(y.shape[0], min(y.shape[0] + 500, allx[3][0]),
                          dtype=np.int32),
      test_index=np.sort(test_index).astype(np.int32),
      num_classes=num_classes)
