"""InfoGraph (Sun et al. 2020): graph-level infomax with a GIN encoder.

A GIN encoder (ReLU, batch norm) gives node ("patch") representations, the
concatenation of every layer's output, and graph representations, the
concatenation of every layer's per-graph sum pool. Two feed-forward heads map
both to one space; the node-vs-graph scores of a batch enter a masked MI
bound whose positives are the (node, own graph) pairs. ``train_infograph``
runs ``infograph_task`` through ``infomax_jax.train.train``: shuffled
mini-batches of graphs, data parallel over blocks of graphs (see
``infograph_task``). With ``embed_every_epochs`` it also keeps the graph
embeddings of every few epochs (``train.train``'s evaluation hook, run at
those epochs; saved in the run folder, so a resumed run keeps them), the
candidates of the paper's epoch selection
(``evaluation.svm_cross_validation_select``).
"""

import dataclasses
import os
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import parallel
from infomax_jax import registry
from infomax_jax import runs
from infomax_jax import train as train_lib
from infomax_jax.graphs import layers
from infomax_jax.graphs import masked_bounds
from infomax_jax.graphs import training
from infomax_jax.graphs import tu
from infomax_jax.graphs.tu import GraphBatch
from infomax_jax.graphs.tu import TUDataset

Array = jax.Array
PyTree = Any


class FeedForward(nn.Module):
  """InfoGraph's projection head: 3 x (Dense, ReLU) plus a linear shortcut."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    d = x.shape[-1]
    h = x
    for i in range(3):
      h = nn.relu(nn.Dense(d, kernel_init=layers.glorot_uniform,
                           name=f'block_{i}')(h))
    return h + nn.Dense(d, kernel_init=layers.glorot_uniform,
                        name='shortcut')(x)


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
    x, outputs = batch.x, []
    mask = batch.node_mask[:, None]
    for i in range(self.num_layers):
      x = nn.relu(layers.GINLayer(self.hidden, name=f'gin_{i}')(
          x, batch.adjacency))
      # PyTorch BatchNorm1d defaults: momentum 0.1, eps 1e-5.
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       epsilon=1e-5, name=f'batch_norm_{i}')(
                           x, mask=jnp.broadcast_to(mask, x.shape))
      outputs.append(x)
    nodes = jnp.concatenate(outputs, axis=-1)
    graphs = layers.sum_readout(nodes, batch.node_graph, batch.num_graphs,
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
  return masked_bounds.masked_bound(scores, pos, neg, bound=bound)


@dataclasses.dataclass
class InfoGraphResult(training.TrainResult):
  """The outcome of ``train_infograph`` (and the fields of ``TrainResult``).

  Attributes:
    variables: final {'params', 'batch_stats'}.
    embedding_epochs: the epochs whose graph embeddings were kept (empty
      unless ``embed_every_epochs`` was given).
    epoch_embeddings: (len(embedding_epochs), G, hidden * num_layers) graph
      embeddings (inference mode) after each of those epochs, or None.
  """
  variables: PyTree
  embedding_epochs: tuple[int, ...] = ()
  epoch_embeddings: Optional[np.ndarray] = None


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
  n_pad, e_pad = tu.padded_sizes(dataset, batch_size)
  batch = tu.batch_graphs(dataset,
                         np.arange(min(batch_size, dataset.num_graphs)),
                         num_nodes=n_pad, num_edges=e_pad,
                         num_graphs=batch_size)
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
    bound: objective, a name of ``masked_bounds.MASKED_BOUNDS``.
    seed: seed of the shuffling (initialisation: ``train.train``'s key).
    num_blocks: B, the number of devices.

  Returns:
    The task (``sample_takes_step``; ``aux`` is the batch statistics).
  """
  registry.lookup(masked_bounds.MASKED_BOUNDS, bound, 'masked bound')
  if batch_size < 2:
    raise ValueError(f'batch_size must be >= 2 (negatives come from other '
                     f'graphs of the batch), got {batch_size}')
  if batch_size % num_blocks:
    raise ValueError(f'batch_size ({batch_size}) must be divisible by the '
                     f'number of blocks / devices ({num_blocks})')
  model = InfoGraph(hidden, num_layers)
  num_graphs = dataset.num_graphs
  per_block = batch_size // num_blocks
  n_block, e_block = tu.padded_sizes(dataset, per_block)
  steps_per_epoch = infograph_steps_per_epoch(num_graphs, batch_size)
  data = {**tu.tu_arrays(dataset),
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
    return tu.device_graph_batch(data, ids, num_nodes=n_block,
                                 num_edges=e_block)

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
                     checkpoint_every_epochs: int = 5,
                     eval_every_epochs: Optional[int] = None
                     ) -> ml_collections.ConfigDict:
  """The ``train.train`` config of ``infograph_task``: one chunk per epoch.

  The evaluation hook (if any) runs every ``eval_every_epochs`` epochs
  (default: at the end only).
  """
  steps = infograph_steps_per_epoch(dataset.num_graphs, batch_size)
  return ml_collections.ConfigDict(dict(
      seed=seed, num_steps=epochs * steps, batch_size=batch_size,
      learning_rate=learning_rate, optimizer='adam', log_every=steps,
      eval_every=(eval_every_epochs or epochs) * steps,
      checkpoint_every=checkpoint_every_epochs * steps, keep_checkpoints=1))


def infograph_embedding_epochs(epochs: int, every: int) -> tuple[int, ...]:
  """The epochs whose embeddings ``train_infograph`` keeps: every ``every``-th
  and the last (where ``train.train`` evaluates)."""
  if every < 1:
    raise ValueError(f'embed_every_epochs must be >= 1, got {every}')
  return tuple(sorted({*range(every, epochs + 1, every), epochs}))


# Run-folder subfolder of the kept embeddings, one file per epoch.
EMBEDDINGS_DIR = 'epoch_embeddings'


def _embeddings_path(workdir: str, epoch: int) -> str:
  return os.path.join(workdir, EMBEDDINGS_DIR, f'epoch{epoch:04d}.npy')


def _save_embeddings(workdir: str, epoch: int, embeddings: np.ndarray) -> None:
  """Writes one epoch's embeddings atomically (an interruption leaves the
  previous file or none, never half a file)."""
  path = _embeddings_path(workdir, epoch)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with runs.atomic_open(path, 'wb') as f:
    np.save(f, embeddings)


def _embedding_hook(embed: Callable[[PyTree], np.ndarray],
                    steps_per_epoch: int, kept: dict[int, np.ndarray],
                    workdir: Optional[str]) -> Callable[..., dict[str, float]]:
  """``train.Task.evaluate``: keeps the embeddings after every evaluated epoch.

  ``train.train`` calls it at step 0 (not kept: not a trained epoch), every
  ``eval_every`` steps and at the end; the embeddings go to ``kept`` and to
  ``workdir`` (where a resumed run finds the epochs before its checkpoint).
  """
  def evaluate(params, batch_stats, step):
    embeddings = embed({'params': params, 'batch_stats': batch_stats})
    if step:
      epoch = step // steps_per_epoch
      kept[epoch] = embeddings
      if workdir is not None:
        _save_embeddings(workdir, epoch, embeddings)
    return {'embedding_norm': float(np.linalg.norm(embeddings, axis=1).mean())}
  return evaluate


def _kept_embeddings(epochs: Sequence[int], kept: dict[int, np.ndarray],
                     workdir: Optional[str]) -> np.ndarray:
  """(E, G, d): the embeddings of ``epochs``, from this call or its folder."""
  out = []
  for epoch in epochs:
    if epoch not in kept:
      path = _embeddings_path(workdir, epoch) if workdir else 'no workdir'
      if not os.path.exists(path):
        raise FileNotFoundError(
            f'the graph embeddings of epoch {epoch} are missing ({path}): the '
            f'run folder was trained without keeping them; remove it to '
            f'retrain')
      kept[epoch] = np.load(path)
    out.append(kept[epoch])
  return np.stack(out)


def train_infograph(dataset: TUDataset, *, hidden: int = 32,
                    num_layers: int = 4, batch_size: int = 128,
                    epochs: int = 20, learning_rate: float = 0.01,
                    seed: int = 0, bound: str = 'jsd',
                    workdir: Optional[str] = None, mesh=None,
                    checkpoint_every_epochs: int = 5,
                    embed_every_epochs: Optional[int] = None,
                    verbose: bool = True) -> InfoGraphResult:
  """Trains InfoGraph with Adam on shuffled mini-batches of graphs.

  Runs ``infograph_task`` through ``train.train`` on ``mesh`` (default: every
  device; each step's graphs are split over them), checkpointing to
  ``workdir`` and resuming from it. Every batch is padded to the same sizes
  (one compiled step); the last, smaller batch of an epoch is kept, as
  PyTorch's DataLoader does.

  With ``embed_every_epochs = k``, ``train.train``'s evaluation hook runs
  every k epochs (and after the last) and keeps the graph embeddings of all
  graphs there (one inference pass; ``<workdir>/epoch_embeddings/
  epochNNNN.npy``). A resumed run reads the epochs before its checkpoint from
  those files and recomputes the later ones, so it returns the embeddings of
  an uninterrupted run.

  Args:
    dataset: the graphs (labels unused).
    hidden: GIN width.
    num_layers: GIN depth.
    batch_size: graphs per batch (a multiple of the device count).
    epochs: passes over the data.
    learning_rate: Adam step size.
    seed: PRNG seed (init and shuffling).
    bound: objective, a name of ``masked_bounds.MASKED_BOUNDS``.
    workdir: checkpoints and metrics.jsonl (one line per epoch; a rerun
      resumes); None: a temporary folder, deleted afterwards.
    mesh: the ``'data'`` mesh (default ``parallel.make_mesh()``).
    checkpoint_every_epochs: epochs between checkpoints.
    embed_every_epochs: keep the graph embeddings every this many epochs
      (and after the last); None: keep none.
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
                            checkpoint_every_epochs=checkpoint_every_epochs,
                            eval_every_epochs=embed_every_epochs)
  kept: dict[int, np.ndarray] = {}
  epoch_list = ()
  if embed_every_epochs is not None:
    epoch_list = infograph_embedding_epochs(epochs, embed_every_epochs)
    task = dataclasses.replace(task, evaluate=_embedding_hook(
        infograph_embedder(dataset, hidden=hidden, num_layers=num_layers),
        infograph_steps_per_epoch(dataset.num_graphs, batch_size), kept,
        workdir))
  state, records, (train_s, compile_s, cpu_s) = training.timed_train(
      config, task, workdir, mesh, verbose)
  variables = jax.device_get({'params': state.params,
                              'batch_stats': state.aux})
  return InfoGraphResult(
      losses=[r['loss'] for r in records], train_seconds=train_s,
      compile_seconds=compile_s, train_cpu_seconds=cpu_s, variables=variables,
      embedding_epochs=epoch_list,
      epoch_embeddings=(_kept_embeddings(epoch_list, kept, workdir)
                        if epoch_list else None))


def infograph_embedder(dataset: TUDataset, *, hidden: int, num_layers: int
                       ) -> Callable[[PyTree], np.ndarray]:
  """``variables -> (G, hidden * num_layers)`` embeddings of every graph.

  One padded batch of all graphs, built once; the function compiles once.
  """
  batch = tu.batch_graphs(dataset, np.arange(dataset.num_graphs),
                         num_nodes=dataset.num_nodes,
                         num_edges=int(dataset.edges.shape[0]),
                         num_graphs=dataset.num_graphs)
  model = InfoGraph(hidden, num_layers)
  fn = jax.jit(lambda v, b: model.apply(v, b, method=InfoGraph.embed))
  return lambda variables: np.asarray(fn(variables, batch))


def infograph_embeddings(variables: PyTree, dataset: TUDataset, *, hidden: int,
                         num_layers: int) -> np.ndarray:
  """(G, hidden * num_layers) embeddings of every graph, inference mode."""
  return infograph_embedder(dataset, hidden=hidden,
                            num_layers=num_layers)(variables)
