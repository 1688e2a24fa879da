"""Small graphs shared by the tests of ``infomax_jax.graphs`` (test_graphs_*).

Tests on the real Planetoid / MUTAG files run when INFOMAX_DATA_DIR is set
(CI sets it) and fail if the files are missing there; they skip only when the
variable is unset (``real_data_dir``). Everything else uses these synthetic
graphs.
"""

import math
import os

import numpy as np
import pytest

from infomax_jax import graphs


def real_data_dir() -> str:
  """$INFOMAX_DATA_DIR, or skips the test when it is unset."""
  data_dir = os.environ.get(graphs.DATA_DIR_ENV)
  if not data_dir:
    pytest.skip(f'{graphs.DATA_DIR_ENV} is unset: real-data test skipped')
  return data_dir


def softplus(z: float) -> float:
  return math.log1p(math.exp(z))


def toy_tu_dataset(sizes=(3, 4, 2, 5), num_labels=3,
                   seed=0) -> graphs.TUDataset:
  """Path graphs of the given sizes with random node labels."""
  rng = np.random.default_rng(seed)
  offsets = np.concatenate([[0], np.cumsum(sizes)])
  edges = []
  for g, size in enumerate(sizes):
    for k in range(size - 1):
      a, b = offsets[g] + k, offsets[g] + k + 1
      edges += [(a, b), (b, a)]
  n = offsets[-1]
  node_graph = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
  return graphs.TUDataset(
      name='toy',
      node_features=np.eye(num_labels, dtype=np.float32)[
          rng.integers(0, num_labels, n)],
      edges=np.array(edges, np.int32), node_graph=node_graph,
      graph_labels=np.arange(len(sizes), dtype=np.int32) % 2,
      label_values=np.array([-1, 1]))


def toy_planetoid(n=23, f=9, seed=0) -> graphs.Planetoid:
  """A random sparse-featured graph with a Planetoid-style split."""
  rng = np.random.default_rng(seed)
  dense = (rng.random((n, f)) < 0.3).astype(np.float32)
  r, c = np.nonzero(dense)
  x = graphs.row_normalize(graphs.sparse_from_coo(r, c, dense[r, c], (n, f)))
  edges = graphs.undirected_edges(rng.integers(0, n, (2 * n, 2)), n)
  return graphs.Planetoid('toy', x, np.zeros(n, np.int32), edges, np.arange(4),
                          np.arange(4, 8), np.arange(8, 16), 2)


def small_graph() -> tuple[np.ndarray, int]:
  """7 nodes: node 6 isolated; the (3, 3) self-loop is dropped."""
  edges = graphs.undirected_edges(
      np.array([[0, 1], [1, 0], [1, 2], [2, 3], [3, 3], [0, 2], [5, 4]]), 7)
  return edges, 7


def dense_norm_adj(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
  """(D^-1/2 (A + I) D^-1/2, degrees of A + I), dense."""
  a = np.zeros((n, n))
  a[edges[:, 0], edges[:, 1]] = a[edges[:, 1], edges[:, 0]] = 1.0
  a += np.eye(n)
  d = a.sum(1)
  return a / np.sqrt(np.outer(d, d)), d


def loop_bound(scores, pos, neg, bound: str) -> float:
  """Reference masked bound: explicit Python loops over the pairs (float64)."""
  s = np.asarray(scores, np.float64)
  pos, neg = np.asarray(pos), np.asarray(neg)
  ep = [s[i, j] for i, j in np.argwhere(pos)]
  en = [s[i, j] for i, j in np.argwhere(neg)]
  if bound == 'jsd':
    return -np.mean([softplus(-v) for v in ep]) - np.mean(
        [softplus(v) for v in en])
  if bound == 'dv':
    return np.mean(ep) - math.log(np.mean(np.exp(en)))
  if bound == 'nwj':
    return np.mean(ep) - np.mean(np.exp(np.array(en) - 1.0))
  terms = []
  for i, j in np.argwhere(pos):
    negs = [s[i, k] for k in range(s.shape[1]) if neg[i, k]]
    terms.append(math.log(1 + len(negs)) + s[i, j]
                 - math.log(math.exp(s[i, j]) + sum(math.exp(v) for v in negs)))
  return np.mean(terms)
