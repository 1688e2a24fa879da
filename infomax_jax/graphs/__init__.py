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
* ``qm9``: QM9 molecules (the CSV files of the PyPI package ``qm9pack``)
  as graphs with PyG's QM9 features (RDKit), cached; the InfoGraph* split.
* ``infograph_star``: InfoGraph* (semi-supervised regression with a
  supervised and an unsupervised encoder tied by MI), its supervised
  baseline, and a ridge probe of frozen embeddings.
* ``dgi`` and ``infograph``: the models, objectives and ``train.Task`` s,
  trained through ``infomax_jax.train.train`` (checkpoints, exact resume),
  data parallel over every device; ``training``: what their training calls
  share.
* ``evaluation``: DGI's repeated logistic-regression probe and InfoGraph's
  SVM cross-validation (also with the epoch chosen on the training folds).
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

from infomax_jax.graphs.dgi import DGI
from infomax_jax.graphs.dgi import BilinearDiscriminator
from infomax_jax.graphs.dgi import DGIResult
from infomax_jax.graphs.dgi import dgi_config
from infomax_jax.graphs.dgi import dgi_embeddings
from infomax_jax.graphs.dgi import dgi_objective
from infomax_jax.graphs.dgi import dgi_task
from infomax_jax.graphs.dgi import train_dgi
from infomax_jax.graphs.evaluation import logreg_probe
from infomax_jax.graphs.evaluation import svm_cross_validation
from infomax_jax.graphs.evaluation import svm_cross_validation_select
from infomax_jax.graphs.files import DATA_DIR_ENV
from infomax_jax.graphs.files import resolve_data_dir
from infomax_jax.graphs.infograph import FeedForward
from infomax_jax.graphs.infograph import GINEncoder
from infomax_jax.graphs.infograph import InfoGraph
from infomax_jax.graphs.infograph import InfoGraphResult
from infomax_jax.graphs.infograph import infograph_config
from infomax_jax.graphs.infograph import infograph_embedder
from infomax_jax.graphs.infograph import infograph_embedding_epochs
from infomax_jax.graphs.infograph import infograph_embeddings
from infomax_jax.graphs.infograph import infograph_init
from infomax_jax.graphs.infograph import infograph_masks
from infomax_jax.graphs.infograph import infograph_objective
from infomax_jax.graphs.infograph import infograph_steps_per_epoch
from infomax_jax.graphs.infograph import infograph_task
from infomax_jax.graphs.infograph import train_infograph
from infomax_jax.graphs.infograph_star import InfoGraphStar
from infomax_jax.graphs.infograph_star import InfoGraphStarResult
from infomax_jax.graphs.infograph_star import infograph_star_loss
from infomax_jax.graphs.infograph_star import infograph_star_task
from infomax_jax.graphs.infograph_star import ridge_probe
from infomax_jax.graphs.infograph_star import train_infograph_star
from infomax_jax.graphs.layers import GCNLayer
from infomax_jax.graphs.layers import GINLayer
from infomax_jax.graphs.layers import dgi_summary
from infomax_jax.graphs.layers import mean_readout
from infomax_jax.graphs.layers import sum_readout
from infomax_jax.graphs.masked_bounds import MASKED_BOUNDS
from infomax_jax.graphs.masked_bounds import masked_bound
from infomax_jax.graphs.masked_bounds import masked_logmeanexp
from infomax_jax.graphs.masked_bounds import masked_mean
from infomax_jax.graphs.planetoid import PLANETOID_NAMES
from infomax_jax.graphs.planetoid import Planetoid
from infomax_jax.graphs.planetoid import UnsafePickleError
from infomax_jax.graphs.planetoid import load_planetoid
from infomax_jax.graphs.planetoid import restricted_load
from infomax_jax.graphs.planetoid import restricted_loads
from infomax_jax.graphs.protocol import Evaluation
from infomax_jax.graphs.protocol import Protocol
from infomax_jax.graphs.qm9 import QM9
from infomax_jax.graphs.qm9 import load_qm9
from infomax_jax.graphs.qm9 import qm9_split
from infomax_jax.graphs.sparse import Features
from infomax_jax.graphs.sparse import SparseMatrix
from infomax_jax.graphs.sparse import matmul
from infomax_jax.graphs.sparse import normalized_adjacency
from infomax_jax.graphs.sparse import permute_rows
from infomax_jax.graphs.sparse import row_blocks
from infomax_jax.graphs.sparse import row_normalize
from infomax_jax.graphs.sparse import sparse_from_coo
from infomax_jax.graphs.sparse import spmm
from infomax_jax.graphs.sparse import undirected_edges
from infomax_jax.graphs.training import TrainResult
from infomax_jax.graphs.tu import GraphBatch
from infomax_jax.graphs.tu import TUDataset
from infomax_jax.graphs.tu import batch_graphs
from infomax_jax.graphs.tu import device_graph_batch
from infomax_jax.graphs.tu import load_tu_dataset
from infomax_jax.graphs.tu import padded_sizes
from infomax_jax.graphs.tu import tu_arrays

__all__ = [
    'DGI', 'BilinearDiscriminator', 'DGIResult', 'dgi_config',
    'dgi_embeddings', 'dgi_objective', 'dgi_task', 'train_dgi', 'logreg_probe',
    'svm_cross_validation', 'svm_cross_validation_select', 'DATA_DIR_ENV',
    'resolve_data_dir', 'FeedForward',
    'GINEncoder', 'InfoGraph', 'InfoGraphResult', 'infograph_config',
    'infograph_embedder', 'infograph_embedding_epochs',
    'infograph_embeddings', 'infograph_init', 'infograph_masks',
    'infograph_objective', 'infograph_steps_per_epoch', 'infograph_task',
    'train_infograph', 'InfoGraphStar', 'InfoGraphStarResult',
    'infograph_star_loss', 'infograph_star_task', 'ridge_probe',
    'train_infograph_star', 'GCNLayer', 'GINLayer', 'dgi_summary', 'mean_readout',
    'sum_readout', 'MASKED_BOUNDS', 'masked_bound', 'masked_logmeanexp',
    'masked_mean', 'PLANETOID_NAMES', 'Planetoid', 'UnsafePickleError',
    'load_planetoid', 'restricted_load', 'restricted_loads', 'Evaluation',
    'Protocol', 'QM9', 'load_qm9', 'qm9_split', 'Features', 'SparseMatrix', 'matmul',
    'normalized_adjacency', 'permute_rows', 'row_blocks', 'row_normalize',
    'sparse_from_coo', 'spmm', 'undirected_edges', 'TrainResult', 'GraphBatch',
    'TUDataset', 'batch_graphs', 'device_graph_batch', 'load_tu_dataset',
    'padded_sizes', 'tu_arrays',
]
