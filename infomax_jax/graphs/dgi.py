"""Deep Graph Infomax (Velickovic et al. 2019): model, objective, training.

A one-layer GCN encoder (PReLU) maps the nodes to h; the summary is
s = sigmoid(mean_i h_i); a bilinear discriminator scores real nodes against
s (joint pairs) and nodes of the row-shuffled features (corrupted, product
of marginals). ``dgi_objective`` is a masked MI bound on those scores (JSD:
-2 x the paper's binary cross-entropy). ``train_dgi`` runs ``dgi_task``
through ``infomax_jax.train.train``: one full-graph step per epoch, early
stopping on the training loss inside the jitted step, data parallel over the
node rows (see ``dgi_task``).
"""

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from infomax_jax import parallel
from infomax_jax import registry
from infomax_jax import train as train_lib
from infomax_jax.graphs import layers
from infomax_jax.graphs import masked_bounds
from infomax_jax.graphs import sparse
from infomax_jax.graphs import training
from infomax_jax.graphs.planetoid import Planetoid

Array = jax.Array
PyTree = Any


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

    def torch_bilinear_init(key, shape, dtype=jnp.float32):
      # torch.nn.Bilinear's (1, d, d) weight: fans d * d and d.
      return nn.initializers.xavier_uniform(in_axis=1, out_axis=0)(
          key, (1, *shape), dtype)[0]

    kernel = self.param('kernel', torch_bilinear_init, (d, d))
    bias = self.param('bias', nn.initializers.zeros, ())
    return h @ (kernel @ summary) + bias


class DGI(nn.Module):
  """Deep Graph Infomax (Velickovic et al. 2019) with a one-layer GCN encoder.

  Attributes:
    hidden: embedding width (512 in the paper for Cora and CiteSeer).
  """
  hidden: int = 512

  def setup(self):
    self.encoder = layers.GCNLayer(self.hidden)
    self.discriminator = BilinearDiscriminator()

  def __call__(self, x: sparse.Features, adjacency: sparse.SparseMatrix,
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
    s = (layers.dgi_summary(h) if node_mask is None
         else jax.nn.sigmoid(layers.mean_readout(h, node_mask)))
    return self.discriminator(h, s), self.discriminator(h_corrupt, s)

  def embed(self, x: sparse.Features, adjacency: sparse.SparseMatrix) -> Array:
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
    bound: a name of ``masked_bounds.MASKED_BOUNDS``.
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
    return masked_bounds.masked_bound(scores, pos, ~pos, bound=bound)
  if mask.shape != positive.shape or negative.shape != positive.shape:
    raise ValueError(f'dgi_objective: with a mask, positive, negative and mask '
                     f'must have one shape (N,), got {positive.shape}, '
                     f'{negative.shape} and {mask.shape}')
  none = jnp.zeros_like(mask)
  return masked_bounds.masked_bound(
      scores, jnp.concatenate([mask, none])[None, :],
      jnp.concatenate([none, mask])[None, :], bound=bound)


@dataclasses.dataclass
class DGIResult(training.TrainResult):
  """The outcome of ``train_dgi`` (and the fields of ``TrainResult``).

  Attributes:
    params: parameters of the epoch with the lowest training loss.
    best_epoch: that epoch (0-based).
  """
  params: PyTree
  best_epoch: int


def dgi_task(data: Planetoid, *, hidden: int = 512, patience: int = 20,
             max_epochs: int = 10000, bound: str = 'jsd',
             num_blocks: int = 1) -> train_lib.Task:
  """DGI as a ``train.Task``: one full-graph step per epoch, early stopping.

  Data parallelism on one graph: the "batch" of every step is the graph's
  node set. The nodes are padded to a multiple of ``num_blocks`` (the device
  count) and the rows of the features X and of Â are cut into ``num_blocks``
  row blocks (``sparse.row_blocks``); ``train.train`` shards the blocks, the node
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
    bound: objective, a name of ``masked_bounds.MASKED_BOUNDS``.
    num_blocks: row blocks of the graph (the number of devices).

  Returns:
    The task; ``aux`` holds best_params, best_loss, best_epoch, epochs (run),
    stopped, and losses (max_epochs,) per epoch.
  """
  registry.lookup(masked_bounds.MASKED_BOUNDS, bound, 'masked bound')
  model = DGI(hidden)
  n = data.num_nodes
  n_pad = -(-n // num_blocks) * num_blocks
  adjacency = data.adjacency()
  graph = {
      'x': sparse.row_blocks(data.features, num_blocks, num_rows=n_pad),
      'adjacency': sparse.row_blocks(adjacency, num_blocks, num_rows=n_pad,
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
    bound: objective, a name of ``masked_bounds.MASKED_BOUNDS``.
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
  state, _, (train_s, compile_s, cpu_s) = training.timed_train(
      config, task, workdir, mesh, verbose)
  aux = jax.device_get(state.aux)
  epochs = int(aux['epochs'])
  return DGIResult(losses=[float(v) for v in aux['losses'][:epochs]],
                   train_seconds=train_s, compile_seconds=compile_s,
                   train_cpu_seconds=cpu_s, params=aux['best_params'],
                   best_epoch=int(aux['best_epoch']))


def dgi_embeddings(params: PyTree, data: Planetoid, hidden: int) -> np.ndarray:
  """(N, hidden) node embeddings of a trained ``DGI`` on the real graph."""
  model = DGI(hidden)
  fn = jax.jit(lambda p, x, a: model.apply(p, x, a, method=DGI.embed))
  return np.asarray(fn(params, data.features, data.adjacency()))
