"""InfoGraph* (Sun et al. 2020, Sec. 4): semi-supervised graph regression.

Two GIN encoders (``infograph.GINEncoder``): a supervised one phi whose graph
representation feeds a regressor, trained by MSE on the labeled molecules,
and an unsupervised one varphi trained by InfoGraph's node-vs-graph bound on
every training molecule (labeled and unlabeled). So that the unlabeled
molecules help the regression without imposing the unsupervised objective on
phi (negative transfer), the two are tied by the MI between their layers'
graph representations (the paper's Eq. 9):

  L = sum_labeled MSE(phi) - sum_all I_local-global(varphi)
      - lambda sum_k I(h^k_phi(G); h^k_varphi(G)),

each I a JSD bound (``masked_bounds``). h^k is the per-graph sum pool of layer
k (InfoGraph's jumping-knowledge chunks); for every layer, one projection
head per encoder maps it to the space where the (G, G) scores
``<head_phi(h^k_phi(G)), head_varphi(h^k_varphi(G'))>`` are scored with the
pairs G = G' as positives. ``semi=False`` is the supervised-only baseline
(phi and the regressor alone).

Deviations from the paper (stated in docs/notes/issue22_infograph_star.md):
the encoder is this project's GIN (no edge features, no Set2Set) rather than
the paper's edge-network MPNN, and all 12 targets can be trained jointly by
one regressor with 12 outputs.
"""

import contextlib
import dataclasses
import tempfile
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import parallel
from infomax_jax import registry
from infomax_jax import runs
from infomax_jax import train as train_lib
from infomax_jax.graphs import infograph
from infomax_jax.graphs import layers
from infomax_jax.graphs import masked_bounds
from infomax_jax.graphs import training
from infomax_jax.graphs import tu
from infomax_jax.graphs.tu import GraphBatch

Array = jax.Array
PyTree = Any


class Regressor(nn.Module):
  """The supervised head: Dense(hidden), ReLU, Dense(num_targets)."""
  hidden: int
  num_targets: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    h = nn.relu(nn.Dense(self.hidden, kernel_init=layers.glorot_uniform,
                         name='hidden')(x))
    return nn.Dense(self.num_targets, kernel_init=layers.glorot_uniform,
                    name='out')(h)


class InfoGraphStar(nn.Module):
  """InfoGraph* (``semi=True``) or its supervised-only baseline.

  Attributes:
    hidden: GIN width (both encoders).
    num_layers: GIN depth.
    num_targets: regression outputs.
    semi: build the unsupervised encoder and the MI heads.
    readout_scale: the regressor reads phi's sum-pooled graph vector divided
      by this (e.g. the mean atom count, ~18 on QM9): a sum of 18 batch-normed
      nodes per feature otherwise starts the predictions at ~3 target stds
      (initial normalised MSE ~9 instead of ~0.6).
  """
  hidden: int = 64
  num_layers: int = 3
  num_targets: int = 12
  semi: bool = True
  readout_scale: float = 1.0

  def setup(self):
    self.sup_encoder = infograph.GINEncoder(self.hidden, self.num_layers)
    self.regressor = Regressor(self.hidden, self.num_targets)
    if self.semi:
      self.unsup_encoder = infograph.GINEncoder(self.hidden, self.num_layers)
      self.local_head = infograph.FeedForward()
      self.global_head = infograph.FeedForward()
      self.sup_heads = [infograph.FeedForward() for _ in range(self.num_layers)]
      self.unsup_heads = [infograph.FeedForward()
                          for _ in range(self.num_layers)]

  def predict(self, batch: GraphBatch, train: bool = False) -> Array:
    """(g_pad, num_targets) predictions of phi and the regressor."""
    graphs = self.sup_encoder(batch, train)[0]
    return self.regressor(graphs / self.readout_scale)

  def __call__(self, labeled: GraphBatch, unlabeled: Optional[GraphBatch],
               train: bool = True) -> dict[str, Any]:
    """Everything the loss reads.

    Returns:
      'predictions' (g_lab, T) on ``labeled``; with ``semi`` also
      'local_global' (n_unl, g_unl) InfoGraph scores of varphi on
      ``unlabeled`` and 'layer_scores', a list of num_layers (g_unl, g_unl)
      scores between the layers of phi and varphi on ``unlabeled``.
    """
    out = {}
    if self.semi:
      unsup_graphs, unsup_nodes = self.unsup_encoder(unlabeled, train)
      out['local_global'] = (self.local_head(unsup_nodes)
                             @ self.global_head(unsup_graphs).T)
      sup_graphs = self.sup_encoder(unlabeled, train)[0]
      k = self.hidden
      out['layer_scores'] = [
          self.sup_heads[i](sup_graphs[:, i * k:(i + 1) * k])
          @ self.unsup_heads[i](unsup_graphs[:, i * k:(i + 1) * k]).T
          for i in range(self.num_layers)]
    out['predictions'] = self.predict(labeled, train)
    return out


def regression_loss(predictions: Array, targets: Array,
                    graph_mask: Array) -> Array:
  """Mean squared error over the real graphs (``graph_mask``) and targets."""
  sq = jnp.where(graph_mask[:, None], (predictions - targets) ** 2, 0.0)
  return jnp.sum(sq) / (jnp.maximum(jnp.sum(graph_mask), 1)
                        * predictions.shape[-1])


def consistency_masks(graph_mask: Array) -> tuple[Array, Array]:
  """(positive, negative) (g, g) masks of the encoder-vs-encoder scores:
  the same graph / two different real graphs."""
  eye = jnp.eye(graph_mask.shape[0], dtype=bool)
  valid = graph_mask[:, None] & graph_mask[None, :]
  return eye & valid, ~eye & valid


def consistency_objective(layer_scores: list[Array], graph_mask: Array,
                          bound: str = 'jsd') -> Array:
  """The mean over layers k of I(h^k_phi; h^k_varphi), a masked bound each."""
  pos, neg = consistency_masks(graph_mask)
  return jnp.mean(jnp.stack([
      masked_bounds.masked_bound(s, pos, neg, bound=bound)
      for s in layer_scores]))


def infograph_star_loss(outputs: dict[str, Any], targets: Array,
                        labeled: GraphBatch, unlabeled: Optional[GraphBatch],
                        *, lam: float, bound: str = 'jsd'
                        ) -> tuple[Array, dict[str, Array]]:
  """InfoGraph*'s loss MSE - I_local-global - lam I_consistency (or MSE alone).

  Returns:
    (loss, {'mse', and with the unsupervised parts 'local_global',
    'consistency'}: the terms, bounds in nats).
  """
  mse = regression_loss(outputs['predictions'], targets, labeled.graph_mask)
  if 'local_global' not in outputs:
    return mse, {'mse': mse}
  local_global = infograph.infograph_objective(outputs['local_global'],
                                               unlabeled, bound)
  consistency = consistency_objective(outputs['layer_scores'],
                                      unlabeled.graph_mask, bound)
  loss = mse - local_global - lam * consistency
  return loss, {'mse': mse, 'local_global': local_global,
                'consistency': consistency}


def qm9_arrays(dataset: Any, targets: np.ndarray, labeled: np.ndarray,
               unlabeled: np.ndarray) -> dict[str, Any]:
  """The device data of ``infograph_star_task``: graphs, normalised targets
  (G, T) and the ids of the labeled and of the unsupervised pools."""
  return {**tu.tu_arrays(dataset),
          'targets': np.asarray(targets, np.float32),
          'labeled': np.asarray(labeled, np.int32),
          'unlabeled': np.asarray(unlabeled, np.int32)}


def infograph_star_task(dataset: Any, targets: np.ndarray, labeled: np.ndarray,
                        unlabeled: np.ndarray, *, semi: bool, hidden: int = 64,
                        num_layers: int = 3, batch_size: int = 64,
                        unlabeled_batch_size: Optional[int] = None,
                        lam: float = 0.001, bound: str = 'jsd',
                        readout_scale: float = 1.0,
                        num_blocks: int = 1, evaluate=None) -> train_lib.Task:
  """InfoGraph* (or the supervised baseline) as a ``train.Task``.

  Every step draws ``batch_size`` labeled molecules without replacement
  (``jax.random.choice`` over ``labeled``) and, for InfoGraph*,
  ``unlabeled_batch_size`` molecules of the unsupervised pool ``unlabeled``
  uniformly (with replacement across the batch; a repeat is a rare false
  negative). Draws come from the step key, so replicas (``num_seeds``) see
  their own batches. Batches are padded to the largest possible molecules
  (``tu.padded_sizes``): one compiled step. As ``infograph_task``, the
  graph slots are dealt round-robin into ``num_blocks`` device blocks.

  Args:
    dataset: a ``qm9.QM9`` (or any data set with ``tu``'s fields).
    targets: (G, T) normalised targets of every molecule (only those of
      ``labeled`` are read).
    labeled: ids of the labeled training molecules.
    unlabeled: ids of the unsupervised pool (the paper: all training
      molecules, labeled and unlabeled).
    semi: InfoGraph* (True) or supervised only.
    hidden, num_layers: GIN size.
    batch_size: labeled molecules per step.
    unlabeled_batch_size: pool molecules per step (default batch_size).
    lam: lambda, the weight of the encoder-vs-encoder MI.
    bound: masked bound of both MI terms (``masked_bounds.MASKED_BOUNDS``).
    readout_scale: ``InfoGraphStar.readout_scale``.
    num_blocks: devices (batch sizes must be multiples).
    evaluate: the task's host-side evaluation hook.

  Returns:
    The task; ``aux`` is the batch statistics; metrics 'mse' (and
    'local_global', 'consistency').
  """
  registry.lookup(masked_bounds.MASKED_BOUNDS, bound, 'masked bound')
  unlabeled_batch_size = unlabeled_batch_size or batch_size
  for name, size in (('batch_size', batch_size),
                     ('unlabeled_batch_size', unlabeled_batch_size)):
    if size < 2 or size % num_blocks:
      raise ValueError(f'{name} must be >= 2 and a multiple of the {num_blocks}'
                       f' device(s), got {size}')
  if len(labeled) < batch_size:
    raise ValueError(f'{len(labeled)} labeled molecules < batch_size '
                     f'{batch_size}')
  model = InfoGraphStar(hidden, num_layers, int(targets.shape[1]), semi,
                        readout_scale)
  data = qm9_arrays(dataset, targets, labeled, unlabeled)
  sizes = {}
  for name, size in (('lab', batch_size), ('unl', unlabeled_batch_size)):
    sizes[name] = (size // num_blocks,
                   *tu.padded_sizes(dataset, size // num_blocks))

  def draw(arrays, ids, name):
    per_block, n_block, e_block = sizes[name]
    ids = ids.reshape(per_block, num_blocks).T
    return tu.device_graph_batch(arrays, ids, num_nodes=n_block,
                                 num_edges=e_block), ids.reshape(-1)

  def sample(data, key):
    k_lab, k_unl = jax.random.split(key)
    lab_ids = jax.random.choice(k_lab, data['labeled'], (batch_size,),
                                replace=False)
    labeled_batch, slots = draw(data, lab_ids, 'lab')
    batch = {'labeled': labeled_batch, 'targets': data['targets'][slots]}
    if semi:
      unl_ids = data['unlabeled'][jax.random.randint(
          k_unl, (unlabeled_batch_size,), 0, data['unlabeled'].shape[0])]
      batch['unlabeled'] = draw(data, unl_ids, 'unl')[0]
    return batch

  def init(key):
    batch = jax.eval_shape(sample, data, jax.random.PRNGKey(0))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), batch)
    variables = model.init(key, zeros['labeled'], zeros.get('unlabeled'),
                           train=False)
    return variables['params'], variables['batch_stats']

  def loss(params, batch_stats, batch, key):
    del key
    outputs, updates = model.apply(
        {'params': params, 'batch_stats': batch_stats}, batch['labeled'],
        batch.get('unlabeled'), train=True, mutable=['batch_stats'])
    value, metrics = infograph_star_loss(
        outputs, batch['targets'], batch['labeled'], batch.get('unlabeled'),
        lam=lam, bound=bound)
    return value, (metrics, updates['batch_stats'])

  return train_lib.Task(init=init, sample=sample, loss=loss, data=data,
                        evaluate=evaluate)


def predictor(dataset: Any, ids: np.ndarray, *, hidden: int, num_layers: int,
              num_targets: int, semi: bool, readout_scale: float = 1.0,
              chunk: int = 5000):
  """A function ``variables -> (len(ids), T)`` normalised predictions of phi.

  The molecules are packed once into padded batches of ``chunk`` (inference
  mode, one compiled function).
  """
  model = InfoGraphStar(hidden, num_layers, num_targets, semi, readout_scale)
  ids = np.asarray(ids)
  pieces = [ids[i:i + chunk] for i in range(0, ids.size, chunk)]
  sizes = np.diff(dataset.node_offsets)
  edges = np.diff(dataset.edge_offsets)
  n_pad = max(int(sizes[p].sum()) for p in pieces)
  e_pad = max(int(edges[p].sum()) for p in pieces)
  batches = [tu.batch_graphs(dataset, p, num_nodes=n_pad, num_edges=e_pad,
                             num_graphs=chunk) for p in pieces]
  fn = jax.jit(lambda v, b: model.apply(v, b, method=InfoGraphStar.predict))

  def predict(variables):
    return np.concatenate([np.asarray(fn(variables, b))[:p.size]
                           for b, p in zip(batches, pieces)])
  return predict


def embedder(dataset: Any, ids: np.ndarray, *, hidden: int, num_layers: int,
             chunk: int = 5000):
  """A function ``InfoGraph variables -> (len(ids), hidden * num_layers)``
  graph embeddings (inference mode), in padded chunks of ``chunk``."""
  model = infograph.InfoGraph(hidden, num_layers)
  ids = np.asarray(ids)
  pieces = [ids[i:i + chunk] for i in range(0, ids.size, chunk)]
  sizes = np.diff(dataset.node_offsets)
  edges = np.diff(dataset.edge_offsets)
  n_pad = max(int(sizes[p].sum()) for p in pieces)
  e_pad = max(int(edges[p].sum()) for p in pieces)
  batches = [tu.batch_graphs(dataset, p, num_nodes=n_pad, num_edges=e_pad,
                             num_graphs=chunk) for p in pieces]
  fn = jax.jit(lambda v, b: model.apply(v, b, method=infograph.InfoGraph.embed))

  def embed(variables):
    return np.concatenate([np.asarray(fn(variables, b))[:p.size]
                           for b, p in zip(batches, pieces)])
  return embed


def ridge_probe(train_x: np.ndarray, train_y: np.ndarray,
                evals: dict[str, np.ndarray],
                alphas=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
                select: str = 'val', eval_y: Optional[dict] = None
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Linear regression probe: ridge on standardised features, alpha per
  target chosen by the MAE on ``evals[select]``.

  Args:
    train_x: (N, D) features; train_y: (N, T) targets.
    evals: name -> (M, D) features to predict.
    alphas: ridge penalties tried (times N).
    select: the key of ``evals`` used to choose alpha.
    eval_y: name -> (M, T) targets; needs ``select``.

  Returns:
    ({name: (M, T) predictions with each target's chosen alpha}, the (T,)
    chosen alphas).
  """
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  x = (train_x - mean) / std
  x = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
  y_mean = train_y.mean(0)
  gram, xty = x.T @ x, x.T @ (train_y - y_mean)
  reg = np.eye(x.shape[1])
  reg[-1, -1] = 0.0
  feats = {k: np.concatenate([(v - mean) / std, np.ones((v.shape[0], 1))], 1)
           for k, v in evals.items()}
  preds = {a: {k: f @ np.linalg.solve(gram + a * x.shape[0] * reg, xty)
               + y_mean for k, f in feats.items()} for a in alphas}
  mae = np.stack([np.abs(preds[a][select] - eval_y[select]).mean(0)
                  for a in alphas])            # (A, T)
  best = mae.argmin(0)
  out = {k: np.stack([preds[alphas[b]][k][:, t] for t, b in enumerate(best)],
                     axis=1) for k in evals}
  return out, np.array([alphas[b] for b in best])


@dataclasses.dataclass
class InfoGraphStarResult:
  """The outcome of ``train_infograph_star``.

  Attributes:
    test_mae: (num_seeds, T) normalised test MAE of each replica, for every
      target at the evaluation with that target's lowest validation MAE.
    val_mae: (num_seeds, T) that lowest validation MAE.
    best_step: (num_seeds, T) the step of that evaluation.
    losses: (steps logged, num_seeds) training loss per logged chunk.
    mse: likewise, the supervised term.
    train_seconds, compile_seconds, train_cpu_seconds: as ``TrainResult``.
  """
  test_mae: np.ndarray
  val_mae: np.ndarray
  best_step: np.ndarray
  losses: np.ndarray
  mse: np.ndarray
  train_seconds: float
  compile_seconds: float
  train_cpu_seconds: float


def train_infograph_star(dataset: Any, targets: np.ndarray,
                         split: dict[str, np.ndarray], *, semi: bool,
                         seed: int = 0, num_seeds: int = 1, hidden: int = 64,
                         num_layers: int = 3, batch_size: int = 64,
                         unlabeled_batch_size: Optional[int] = None,
                         lam: float = 0.001, bound: str = 'jsd',
                         readout_scale: float = 1.0,
                         learning_rate: float = 1e-3, num_steps: int = 1000,
                         log_every: int = 50, eval_every: int = 250,
                         workdir: Optional[str] = None, mesh=None,
                         verbose: bool = True) -> InfoGraphStarResult:
  """Trains InfoGraph* (or the supervised baseline) on ``num_seeds`` seeds at
  once (vmapped replicas of ``train.train``) and selects on validation.

  Every ``eval_every`` steps each replica predicts the validation and test
  molecules (``predictor``); per target, the reported test MAE is the one at
  the evaluation of lowest validation MAE of that target (model selection on
  val, as the paper's per-target training with early stopping).

  Args:
    dataset: a ``qm9.QM9``.
    targets: (G, T) normalised targets.
    split: ``qm9.qm9_split``-like dict with 'train', 'val', 'test' and
      'pool' (the unsupervised molecules).
    semi: InfoGraph* or supervised only.
    seed, num_seeds: replicas have seeds seed .. seed + num_seeds - 1.
    hidden, num_layers, batch_size, unlabeled_batch_size, lam, bound,
      readout_scale: see ``infograph_star_task``.
    learning_rate: Adam step size.
    num_steps: optimisation steps.
    log_every: steps per jitted chunk / train record.
    eval_every: steps between evaluations (a multiple of log_every).
    workdir: train.train's folder (resumed); None: temporary.
    mesh: the device mesh (default all devices).
    verbose: progress lines.

  Returns:
    An ``InfoGraphStarResult``.
  """
  mesh = mesh or parallel.make_mesh()
  num_targets = int(targets.shape[1])
  arch = dict(hidden=hidden, num_layers=num_layers, num_targets=num_targets,
              semi=semi, readout_scale=readout_scale)
  sets = {name: (predictor(dataset, split[name], **arch),
                 np.asarray(targets[split[name]]))
          for name in ('val', 'test')}

  def evaluate(params, batch_stats, step, seed=None):
    del step, seed
    variables = {'params': params, 'batch_stats': batch_stats}
    out = {}
    for name, (predict, y) in sets.items():
      mae = np.abs(predict(variables) - y).mean(0)
      out[f'{name}_mae'] = float(mae.mean())
      out.update({f'{name}_{t}': float(m) for t, m in enumerate(mae)})
    return out

  task = infograph_star_task(
      dataset, targets, split['train'], split['pool'], semi=semi,
      hidden=hidden, num_layers=num_layers, batch_size=batch_size,
      unlabeled_batch_size=unlabeled_batch_size, lam=lam, bound=bound,
      readout_scale=readout_scale, num_blocks=mesh.shape[parallel.DATA_AXIS], evaluate=evaluate)
  config = ml_collections.ConfigDict(dict(
      seed=seed, num_seeds=num_seeds, num_steps=num_steps,
      batch_size=batch_size, learning_rate=learning_rate, optimizer='adam',
      log_every=log_every, eval_every=eval_every, checkpoint_every=eval_every,
      keep_checkpoints=1))
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory())
    _, _, (train_s, compile_s, cpu_s) = training.timed_train(
        config, task, workdir, mesh, verbose)
    evals = runs.read_metrics(workdir, 'eval')
    train_records = runs.read_metrics(workdir, 'train')
  seeds = train_lib.replica_seeds(config)
  test, val, best = (np.zeros((len(seeds), num_targets)) for _ in range(3))
  losses, mse = [], []
  for r, s in enumerate(seeds):
    own = [e for e in evals if num_seeds == 1 or e.get('seed') == str(s)]
    # Step 0 (the untrained model) is not a candidate.
    own = [e for e in own if e['step'] > 0]
    for t in range(num_targets):
      i = int(np.argmin([e[f'val_{t}'] for e in own]))
      test[r, t], val[r, t] = own[i][f'test_{t}'], own[i][f'val_{t}']
      best[r, t] = own[i]['step']
    rec = [e for e in train_records if num_seeds == 1 or e.get('seed') == str(s)]
    losses.append([e['loss'] for e in rec])
    mse.append([e['mse'] for e in rec])
  return InfoGraphStarResult(
      test_mae=test, val_mae=val, best_step=best.astype(int),
      losses=np.array(losses).T, mse=np.array(mse).T, train_seconds=train_s,
      compile_seconds=compile_s, train_cpu_seconds=cpu_s)
