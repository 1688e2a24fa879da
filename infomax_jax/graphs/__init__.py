"""Graph infomax: Deep Graph Infomax (DGI) and InfoGraph on sparse graphs.

One module per concern:

* ``files``: the data folder (``data_dir`` or ``$INFOMAX_DATA_DIR``).
* ``planetoid``: Cora and CiteSeer from the original ``ind.<name>.*``
  pickles, read by a restricted unpickler (numpy / scipy-CSR /
  adjacency-list objects only).
* ``tu``: TU-format graph classification sets (MUTAG) and padded,
  segment-indexed graph batches (on the host, or on device in one block per
  device).
* ``sparse``: ``SparseMatrix`` (COO triples) and ``spmm`` on
  ``jax.ops.segment_sum``: no dense N x N adjacency anywhere; row blocks for
  data parallelism; the GCN operator Â.
* ``layers``: ``GCNLayer`` (Kipf & Welling 2017, PReLU as in DGI),
  ``GINLayer`` (Xu et al. 2019), mean / sum readouts.
* ``masked_bounds``: JSD, InfoNCE, DV and NWJ on a rectangular score matrix
  whose positive pairs are given by a mask (exactly ``infomax_jax.bounds``
  when the mask is the identity).
* ``dgi`` and ``infograph``: the models, objectives and ``train.Task`` s,
  trained through ``infomax_jax.train.train`` (checkpoints, exact resume),
  data parallel over every device; ``training``: what their training calls
  share.
* ``evaluation``: DGI's repeated logistic-regression probe and InfoGraph's
  SVM cross-validation.
* ``protocol``: the experiment loop both experiments share (seeds with
  resume, runs.csv, metrics.jsonl, results tables, loss figure).

Every public name is re-exported here: ``graphs.load_planetoid``,
``graphs.train_dgi``, ...

References:
  Velickovic et al., "Deep Graph Infomax", ICLR 2019.
  Sun et al., "InfoGraph: Unsupervised and Semi-supervised Graph-Level
  Representation Learning via Mutual Information Maximization", ICLR 2020.
  Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional
  Networks", ICLR 2017 (the Planetoid preprocessing and GCN normalisation).
"""

from infomax_jax.graphs.dgi import (
  DGI,
  BilinearDiscriminator,
  DGIResult,
  dgi_config,
  dgi_embeddings,
  dgi_objective,
  dgi_task,
  train_dgi,
)
from infomax_jax.graphs.evaluation import logreg_probe, svm_cross_validation
from infomax_jax.graphs.files import DATA_DIR_ENV, resolve_data_dir
from infomax_jax.graphs.infograph import (
  FeedForward,
  GINEncoder,
  InfoGraph,
  InfoGraphResult,
  infograph_config,
  infograph_embeddings,
  infograph_init,
  infograph_masks,
  infograph_objective,
  infograph_steps_per_epoch,
  infograph_task,
  train_infograph,
)
from infomax_jax.graphs.layers import GCNLayer, GINLayer, dgi_summary, mean_readout, sum_readout
from infomax_jax.graphs.masked_bounds import (
  MASKED_BOUNDS,
  masked_bound,
  masked_logmeanexp,
  masked_mean,
)
from infomax_jax.graphs.planetoid import (
  PLANETOID_NAMES,
  Planetoid,
  UnsafePickleError,
  load_planetoid,
  restricted_load,
  restricted_loads,
)
from infomax_jax.graphs.protocol import Evaluation, Protocol
from infomax_jax.graphs.sparse import (
  Features,
  SparseMatrix,
  matmul,
  normalized_adjacency,
  permute_rows,
  row_blocks,
  row_normalize,
  sparse_from_coo,
  spmm,
  undirected_edges,
)
from infomax_jax.graphs.training import TrainResult
from infomax_jax.graphs.tu import (
  GraphBatch,
  TUDataset,
  batch_graphs,
  device_graph_batch,
  load_tu_dataset,
  padded_sizes,
  tu_arrays,
)

__all__ = [
    'DGI', 'BilinearDiscriminator', 'DGIResult', 'dgi_config',
    'dgi_embeddings', 'dgi_objective', 'dgi_task', 'train_dgi', 'logreg_probe',
    'svm_cross_validation', 'DATA_DIR_ENV', 'resolve_data_dir', 'FeedForward',
    'GINEncoder', 'InfoGraph', 'InfoGraphResult', 'infograph_config',
    'infograph_embeddings', 'infograph_init', 'infograph_masks',
    'infograph_objective', 'infograph_steps_per_epoch', 'infograph_task',
    'train_infograph', 'GCNLayer', 'GINLayer', 'dgi_summary', 'mean_readout',
    'sum_readout', 'MASKED_BOUNDS', 'masked_bound', 'masked_logmeanexp',
    'masked_mean', 'PLANETOID_NAMES', 'Planetoid', 'UnsafePickleError',
    'load_planetoid', 'restricted_load', 'restricted_loads', 'Evaluation',
    'Protocol', 'Features', 'SparseMatrix', 'matmul',
    'normalized_adjacency', 'permute_rows', 'row_blocks', 'row_normalize',
    'sparse_from_coo', 'spmm', 'undirected_edges', 'TrainResult', 'GraphBatch',
    'TUDataset', 'batch_graphs', 'device_graph_batch', 'load_tu_dataset',
    'padded_sizes', 'tu_arrays',
]
