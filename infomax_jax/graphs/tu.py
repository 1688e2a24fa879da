"""TU-format graph classification sets (Morris et al. 2020, e.g. MUTAG) and
the padded, segment-indexed batches the graph encoders read.

``load_tu_dataset`` reads ``<name>/<name>_*.txt``. A batch of graphs is one
disjoint union: node rows, a graph slot per node, a sparse adjacency, and
masks for the padding that keeps every batch the same shape (one compiled
step). ``batch_graphs`` packs one on the host; ``device_graph_batch`` packs B
blocks of graphs on device, one block per device, for data-parallel training.
"""

import dataclasses
import os
from typing import Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from infomax_jax.graphs import files
from infomax_jax.graphs import sparse

Array = jax.Array


class PackedGraphs:
  """What batching reads of a set of graphs packed node after node: ``node_graph``
  (n,) non-decreasing graph ids, ``edges`` (m, 2) sorted by graph, and
  ``num_graphs`` (from the subclass)."""
  node_graph: np.ndarray
  edges: np.ndarray

  @property
  def num_nodes(self) -> int:
    return int(self.node_graph.shape[0])

  @property
  def node_offsets(self) -> np.ndarray:
    """(G + 1,) first node of each graph (and n at the end)."""
    return np.searchsorted(self.node_graph, np.arange(self.num_graphs + 1))

  @property
  def edge_offsets(self) -> np.ndarray:
    """(G + 1,) first edge of each graph in ``edges`` (sorted by graph)."""
    return np.searchsorted(self.node_graph[self.edges[:, 0]],
                           np.arange(self.num_graphs + 1))


@dataclasses.dataclass(frozen=True)
class TUDataset(PackedGraphs):
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
  def num_classes(self) -> int:
    return int(self.label_values.shape[0])


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
  folder = os.path.join(files.resolve_data_dir(data_dir), name)
  parts = ('A', 'graph_indicator', 'graph_labels', 'node_labels')
  paths = {p: os.path.join(folder, f'{name}_{p}.txt') for p in parts}
  files.require_files(list(paths.values()), f'TU data set {name}')
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
  adjacency: sparse.SparseMatrix
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
      adjacency=sparse.sparse_from_coo(receivers, senders, values,
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
      adjacency=sparse.SparseMatrix(receivers.astype(jnp.int32),
                             senders.astype(jnp.int32), values, (n, n),
                             rows_sorted=True, block_diagonal=True),
      node_graph=(slot + first_slot).reshape(n).astype(jnp.int32),
      node_mask=real.reshape(n),
      graph_mask=valid.reshape(b * g))
