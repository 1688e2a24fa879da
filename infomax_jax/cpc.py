"""Contrastive Predictive Coding (van den Oord et al. 2018, "Representation
Learning with Contrastive Predictive Coding", arXiv:1807.03748).

An encoder maps each step of a sequence to a latent z_t; an autoregressive
context network summarises z_{≤t} into c_t; a linear predictor per offset k
scores the future latent z_{t+k} against negatives by InfoNCE with the
bilinear critic

    f_k(z_{t+k}, c_t) = z_{t+k}^T W_k c_t.

Both forms share one layout: latents and contexts are arrays
``(B, T, W, d)``, with T the autoregressive axis (time, or rows of patches)
and W positions that are predicted in parallel (columns of patches; W = 1
for a true sequence).

* **Images** (the paper's Sec. 3.3 setup at MNIST size): a 28×28 image is
  zero-padded to 32×32 and cut into a 7×7 grid of overlapping 8×8 patches
  with stride 4 (``patch_grid``; the paper: 7×7 patches of 64×64 with
  stride 32 from 256×256). A small conv net encodes every patch
  (``PatchEncoder``, batched over the grid: no loop over locations), the
  context network runs down the rows, and c_{t,j} predicts z_{t+k,j}.
* **Sequences**: (B, T, F) inputs, e.g. the 28 pixel rows of an image as
  28 time steps (``image_rows``) or a token sequence; a per-step MLP
  (``StepEncoder``) and the same context and loss.

Context networks (``CONTEXTS``, chosen by name):

* ``'masked_conv'``: a stack of convolutions over the (T, W) grid whose
  kernels see only the current and earlier rows (PixelCNN-style causal
  padding in T; the paper's image model is a PixelCNN);
* ``'gru'``: a GRU along T (``flax.linen.RNN``, i.e. ``lax.scan``), run for
  every column at once; at row t its input is the column's latent plus a
  summary (mean) of row t, so c_{t,j} sees every column of the rows ≤ t.

Either way c_t depends only on z_{≤t} (tests/test_cpc.py checks it with
``jax.jacfwd``).

Loss: for every offset k = 1..K the queries are W_k c_{b,t,j} for all
images b, rows t < T-k and columns j, N = B (T-k) W of them; the candidates
are the true latents z_{b,t+k,j} at the same N places, so row n of the
(N, N) score matrix has its positive on the diagonal and N-1 negatives from
the other patches of the same image and of every other image in the batch.
Any scores-only entry of ``infomax_jax.bounds`` (default 'infonce', whose
estimate is at most log N) turns them into the objective. Inside the jitted,
batch-sharded train step the (N, N) matrix spans the global batch, so the
negatives come from every device (``infomax_jax.parallel``);
``negatives='sharded'`` computes the same InfoNCE without the matrix through
``bounds.streaming.infonce`` over ``parallel.batch_shard_map`` (each device
all-gathers the targets of the others, or passes them around a ring).
"""

import functools
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import bounds
from infomax_jax import data as data_lib
from infomax_jax import evaluation
from infomax_jax import parallel
from infomax_jax import registry
from infomax_jax import train as train_lib
from infomax_jax.bounds import streaming

Array = jax.Array
PyTree = Any

FORMS = ('patches', 'rows')
NEGATIVES = ('dense', 'sharded')
FEATURES = ('z_grid', 'z_pool', 'c_pool')


# ------------------------------------------------------------------ inputs --

def grid_size(image_size: int, patch_size: int, stride: int, pad: int) -> int:
  """Patches per side: (image_size + 2 pad - patch_size) / stride + 1, exact."""
  span = image_size + 2 * pad - patch_size
  if span < 0 or span % stride:
    raise ValueError(
        f'patches of {patch_size} with stride {stride} do not tile an image of '
        f'{image_size} padded by {pad} (need (size + 2 pad - patch) % stride == 0)')
  return span // stride + 1


def patch_grid(images: Array, *, patch_size: int = 8, stride: int = 4,
               pad: int = 2) -> Array:
  """Overlapping square patches of images, on a grid.

  Args:
    images: (B, H, W) or (B, H, W, C) with H = W.
    patch_size: side P of a patch.
    stride: step between patches (P/2: half-overlapping, as in the paper).
    pad: zeros added on every side first (28 + 2·2 = 32 gives a 7×7 grid of
      8×8 patches with stride 4).

  Returns:
    (B, G, G, P, P, C): ``out[b, r, s]`` is the patch whose top-left pixel is
    (stride r, stride s) of the padded image.
  """
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[1] != images.shape[2]:
    raise ValueError(f'patch_grid expects square images (B, H, H[, C]), got '
                     f'shape {images.shape}')
  g = grid_size(images.shape[1], patch_size, stride, pad)
  x = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  idx = stride * jnp.arange(g)[:, None] + jnp.arange(patch_size)[None, :]  # (G, P)
  # One gather: rows idx[r] and columns idx[s] of every image.
  return x[:, idx[:, None, :, None], idx[None, :, None, :]]


def image_rows(images: Array) -> Array:
  """The sequence form of images: (B, H, W[, C]) -> (B, H, W·C), row t = step t."""
  return images.reshape(images.shape[0], images.shape[1], -1)


# ---------------------------------------------------------------- encoders --

class PatchEncoder(nn.Module):
  """Encoder of one patch, applied to every patch of the grid at once.

  conv 3×3 (c_0) -> ReLU -> conv 3×3 stride 2 (c_1) -> ReLU -> ... ->
  flatten -> Dense(latent_dim). No batch norm: statistics shared across the
  patches of a batch would leak information between positives and negatives
  (CPC v2, Hénaff et al. 2020, uses layer norm or none for this reason).

  Attributes:
    latent_dim: size of z.
    channels: conv widths; layers after the first use stride 2.
  """
  latent_dim: int = 64
  channels: Sequence[int] = (32, 64)

  @nn.compact
  def __call__(self, patches: Array) -> Array:
    """(B, T, W, P, P, C) -> (B, T, W, latent_dim)."""
    if patches.ndim != 6:
      raise ValueError(f'PatchEncoder expects (B, T, W, P, P, C) patches, got '
                       f'shape {patches.shape}')
    lead = patches.shape[:3]
    x = patches.reshape((-1,) + patches.shape[3:])   # every patch is one example
    for i, c in enumerate(self.channels):
      stride = 1 if i == 0 else 2
      x = nn.relu(nn.Conv(c, (3, 3), strides=(stride, stride), name=f'conv_{i}')(x))
    x = nn.Dense(self.latent_dim, name='out')(x.reshape(x.shape[0], -1))
    return x.reshape(lead + (self.latent_dim,))


class PatchMLP(nn.Module):
  """MLP on the flattened pixels of every patch: (B, T, W, P, P, C) -> (B, T, W, d).

  The cheap patch encoder of the CPU runs (8×8 patches: 64 pixels).

  Attributes:
    latent_dim: size of z.
    hidden: widths of the hidden layers (ReLU).
  """
  latent_dim: int = 64
  hidden: Sequence[int] = (256,)

  @nn.compact
  def __call__(self, patches: Array) -> Array:
    if patches.ndim != 6:
      raise ValueError(f'PatchMLP expects (B, T, W, P, P, C) patches, got '
                       f'shape {patches.shape}')
    x = patches.reshape(patches.shape[:3] + (-1,))
    for i, h in enumerate(self.hidden):
      x = nn.relu(nn.Dense(h, name=f'hidden_{i}')(x))
    return nn.Dense(self.latent_dim, name='out')(x)


class StepEncoder(nn.Module):
  """Per-step MLP of the sequence form: (B, T, F) -> (B, T, 1, latent_dim).

  Attributes:
    latent_dim: size of z.
    hidden: widths of the hidden layers (ReLU).
  """
  latent_dim: int = 64
  hidden: Sequence[int] = (128,)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 3:
      raise ValueError(f'StepEncoder expects (B, T, F) sequences, got shape {x.shape}')
    for i, h in enumerate(self.hidden):
      x = nn.relu(nn.Dense(h, name=f'hidden_{i}')(x))
    return nn.Dense(self.latent_dim, name='out')(x)[:, :, None, :]


# --------------------------------------------------------- context networks --

class MaskedConvContext(nn.Module):
  """Causal convolutions over the (T, W) grid: c_t sees rows ≤ t only.

  A Dense layer to ``features``, then ``num_layers`` residual blocks
  h <- h + conv(relu(h)) whose (k_T, k_W) kernels are padded k_T - 1 rows
  above and none below (a PixelCNN-style mask on the row axis). With
  k_T = 3 and 3 layers c_t sees 6 rows up: the whole 7-row grid.

  Attributes:
    features: size of c.
    num_layers: residual blocks.
    kernel: (rows, columns) of every kernel; columns odd (centred).
  """
  features: int = 128
  num_layers: int = 3
  kernel: tuple[int, int] = (3, 3)

  @nn.compact
  def __call__(self, z: Array) -> Array:
    """(B, T, W, d) -> (B, T, W, features)."""
    kt, kw = self.kernel
    if kw % 2 != 1:
      raise ValueError(f'kernel columns must be odd (centred), got {self.kernel}')
    h = nn.Dense(self.features, name='in')(z)
    for i in range(self.num_layers):
      conv = nn.Conv(self.features, (kt, kw), padding=((kt - 1, 0), (kw // 2, kw // 2)),
                     name=f'causal_conv_{i}')
      h = h + conv(nn.relu(h))
    return h   # no final ReLU: a unit dead at one place would hide its past


class GRUContext(nn.Module):
  """A GRU along T (``nn.RNN``: one ``lax.scan``), for every column at once.

  Input at (t, j): Dense(z_{t,j}) + Dense(mean_j z_{t,j}) — the column's own
  latent plus a summary of row t — so c_{t,j} depends on all of rows ≤ t.
  With W = 1 (a true sequence) this is a plain GRU over the latents.

  Attributes:
    features: size of c (the GRU state).
  """
  features: int = 128

  @nn.compact
  def __call__(self, z: Array) -> Array:
    """(B, T, W, d) -> (B, T, W, features)."""
    b, t, w, _ = z.shape
    u = nn.Dense(self.features, name='in')(z)
    if w > 1:
      u = u + nn.Dense(self.features, use_bias=False, name='row')(
          jnp.mean(z, axis=2, keepdims=True))
    u = jnp.swapaxes(u, 1, 2).reshape(b * w, t, self.features)  # columns as batch
    c = nn.RNN(nn.GRUCell(self.features), name='gru')(u)
    return jnp.swapaxes(c.reshape(b, w, t, self.features), 1, 2)


CONTEXTS = {'masked_conv': MaskedConvContext, 'gru': GRUContext}
# Encoders by form: the patch encoders take the patch grid, 'step_mlp' the
# steps of a sequence.
ENCODERS = {'patch_conv': PatchEncoder, 'patch_mlp': PatchMLP, 'step_mlp': StepEncoder}


# ------------------------------------------------------------------- model --

class CPC(nn.Module):
  """Encoder + autoregressive context + one linear predictor W_k per offset.

  Attributes:
    encoder: ``PatchEncoder`` (images) or ``StepEncoder`` (sequences),
      returning latents (B, T, W, d).
    context: a module of ``CONTEXTS``, (B, T, W, d) -> (B, T, W, h).
    offsets: the k of the predictions W_k c_t of z_{t+k} (e.g. (1, 2, 3)).
    form: 'patches' (inputs are images) or 'rows' (inputs are (B, T, F)
      sequences; images are read row by row).
    patch_size, stride, pad: the patch grid of the 'patches' form.
  """
  encoder: nn.Module
  context: nn.Module
  offsets: tuple[int, ...] = (1, 2, 3)
  form: str = 'patches'
  patch_size: int = 8
  stride: int = 4
  pad: int = 2

  def encode(self, x: Array) -> Array:
    """Latents z (B, T, W, d) of images / sequences."""
    if self.form == 'patches':
      return self.encoder(patch_grid(x, patch_size=self.patch_size,
                                     stride=self.stride, pad=self.pad))
    if x.ndim == 4:        # (B, H, W, C) images as sequences of rows
      x = image_rows(x)
    return self.encoder(x)

  @nn.compact
  def __call__(self, x: Array) -> dict[str, Array]:
    """{'latents' z (B,T,W,d), 'context' c (B,T,W,h), 'predictions' (K,B,T,W,d)}."""
    z = self.encode(x)
    c = self.context(z)
    if max(self.offsets) >= z.shape[1]:
      raise ValueError(f'offsets {self.offsets} need more than {max(self.offsets)} '
                       f'steps, got T = {z.shape[1]}')
    w = self.param('predictors', nn.initializers.lecun_normal(),
                   (len(self.offsets), c.shape[-1], z.shape[-1]))
    predictions = jnp.einsum('btwh,khd->kbtwd', c, w)
    return {'latents': z, 'context': c, 'predictions': predictions}

  def features(self, x: Array) -> dict[str, Array]:
    """Probe features: flattened latents, and latents and contexts mean-pooled
    over all positions."""
    z = self.encode(x)
    c = self.context(z)
    return {'z_grid': z.reshape(z.shape[0], -1), 'z_pool': jnp.mean(z, axis=(1, 2)),
            'c_pool': jnp.mean(c, axis=(1, 2))}


def pairs(predictions: Array, latents: Array, offset: int) -> tuple[Array, Array]:
  """Queries W_k c_{b,t,j} and their targets z_{b,t+k,j} as (N, d) rows.

  Args:
    predictions: (B, T, W, d): W_k c of one offset.
    latents: (B, T, W, d).
    offset: k >= 1.

  Returns:
    (queries, targets), each (N, d) with N = B (T - k) W, aligned row by row
    and ordered image-major (a batch-sharded image axis stays sharded).
  """
  if predictions.shape != latents.shape or latents.ndim != 4:
    raise ValueError(f'pairs expects predictions and latents of one shape '
                     f'(B, T, W, d), got {predictions.shape} and {latents.shape}')
  if not 1 <= offset < latents.shape[1]:
    raise ValueError(f'offset must be in [1, T) = [1, {latents.shape[1]}), got {offset}')
  d = latents.shape[-1]
  return (predictions[:, :-offset].reshape(-1, d),
          latents[:, offset:].reshape(-1, d))


def scores(predictions: Array, latents: Array, offset: int) -> Array:
  """(N, N) bilinear scores ``s[n, m] = <W_k c_n, z_m>``, positives on the diagonal."""
  queries, targets = pairs(predictions, latents, offset)
  return jnp.dot(queries, targets.T, preferred_element_type=jnp.float32)


def objective(out: dict[str, Array], offsets: Sequence[int], *, bound: str = 'infonce'
              ) -> tuple[Array, dict[str, Array]]:
  """Mean over the offsets of the bound's objective on the dense (N, N) scores.

  Returns ``(objective, metrics)``; metrics hold ``{bound}_k{k}`` (the
  reported estimate, nats) and ``log_n_k{k}`` (log of the candidates per
  query: the InfoNCE ceiling) for every k.
  """
  spec = bounds.get(bound, scores_only=True)
  values, metrics = [], {}
  for i, k in enumerate(offsets):   # K is small and static; shapes differ per k
    s = scores(out['predictions'][i], out['latents'], k)
    value = spec(s)
    values.append(value.objective)
    if value.estimate is not None:
      metrics[f'{bound}_k{k}'] = value.estimate
    metrics[f'log_n_k{k}'] = jnp.asarray(math.log(s.shape[0]), jnp.float32)
  return jnp.mean(jnp.stack(values)), metrics


def sharded_infonce(out: dict[str, Array], offsets: Sequence[int], mesh, *,
                    collective: str = 'all_gather',
                    block_size: Optional[int] = None) -> tuple[Array, dict[str, Array]]:
  """``objective(out, offsets, bound='infonce')`` without any (N, N) matrix.

  Each device builds the queries and targets of its own images and
  ``bounds.streaming.infonce`` scores them against the targets of every
  device (``collective``: one all-gather, or a ring of ppermutes), streamed
  over column blocks when ``block_size`` is set. The rows of every device are
  image-major, so the global rows are those of ``pairs`` and the value equals
  the dense one.
  """
  def per_device(predictions, latents):
    values = []
    for i, k in enumerate(offsets):
      q, y = pairs(predictions[i], latents, k)
      values.append(streaming.infonce(q, y, axis_name=parallel.DATA_AXIS,
                                      collective=collective, block_size=block_size))
    return jnp.stack(values)

  # The image axis of the predictions is axis 1: move it first for the map.
  predictions = jnp.moveaxis(out['predictions'], 1, 0)
  fn = parallel.batch_shard_map(
      lambda p, z: per_device(jnp.moveaxis(p, 0, 1), z), mesh)
  values = fn(predictions, out['latents'])
  b, t, w = out['latents'].shape[:3]
  metrics = {}
  for i, k in enumerate(offsets):
    metrics[f'infonce_k{k}'] = values[i]
    metrics[f'log_n_k{k}'] = jnp.asarray(math.log(b * (t - k) * w), jnp.float32)
  return jnp.mean(values), metrics


# ------------------------------------------------------------ construction --

def offsets_of(config) -> tuple[int, ...]:
  """k = first_offset .. first_offset + prediction_steps - 1."""
  first = config.get('first_offset', 1)
  if first < 1 or config.prediction_steps < 1:
    raise ValueError(f'need first_offset >= 1 and prediction_steps >= 1, got '
                     f'{first} and {config.prediction_steps}')
  return tuple(range(first, first + config.prediction_steps))


def make_model(config: ml_collections.ConfigDict) -> CPC:
  """The ``CPC`` module of ``config`` (form, encoder, context, offsets)."""
  registry.lookup(dict.fromkeys(FORMS), config.form, 'CPC form')
  kwargs = lambda name: {k: tuple(v) if isinstance(v, list) else v
                         for k, v in dict(config.get(name, {}) or {}).items()}
  name = config.cpc_encoder
  registry.lookup(ENCODERS, name, 'CPC encoder')
  if (config.form == 'rows') != (name == 'step_mlp'):
    raise ValueError(f"form {config.form!r} needs encoder "
                     f"{'step_mlp' if config.form == 'rows' else 'patch_conv or patch_mlp'}"
                     f", got {name!r}")
  encoder = ENCODERS[name](config.latent_dim, **kwargs('encoder_kwargs'))
  context = registry.lookup(CONTEXTS, config.context, 'CPC context network')(
      config.context_features, **kwargs('context_kwargs'))
  return CPC(encoder, context, offsets=offsets_of(config), form=config.form,
             patch_size=config.get('patch_size', 8), stride=config.get('stride', 4),
             pad=config.get('pad', 2))


def make_loss(model: CPC, config: ml_collections.ConfigDict, mesh=None):
  """``train.Task.loss``: minus the CPC objective of ``config.bound``.

  ``config.negatives``: 'dense' (the (N, N) scores of the global batch, any
  scores-only bound) or 'sharded' (``sharded_infonce`` over ``mesh``,
  InfoNCE only).
  """
  negatives = config.get('negatives', 'dense')
  registry.lookup(dict.fromkeys(NEGATIVES), negatives, 'CPC negatives')
  if negatives == 'sharded' and config.bound != 'infonce':
    raise ValueError(f"negatives='sharded' computes InfoNCE only, got "
                     f"bound={config.bound!r}")
  bounds.get(config.bound, scores_only=True)    # fail early on a bad name
  # The training mesh: with replica_devices = R > 1 the ('replica', 'data')
  # mesh, whose 'data' axis carries each replica group's batch.
  mesh = mesh or parallel.make_mesh(replica_devices=config.get('replica_devices', 1))

  def loss(params, aux, batch, key):
    del key
    out = model.apply({'params': params}, batch['x'])
    if negatives == 'sharded':
      value, metrics = sharded_infonce(out, model.offsets, mesh,
                                       collective=config.get('collective', 'all_gather'),
                                       block_size=config.get('block_size') or None)
    else:
      value, metrics = objective(out, model.offsets, bound=config.bound)
    return -value, (metrics, aux)

  return loss


@functools.partial(jax.jit, static_argnums=0)
def _features(model: CPC, params: PyTree, x: Array) -> dict[str, Array]:
  return model.apply({'params': params}, x, method=CPC.features)


def encode_features(model: CPC, params: PyTree, images: Array,
                    batch_size: int = 500) -> dict[str, Array]:
  """Probe features of ``images`` in jitted batches (``evaluation.map_batches``)."""
  return evaluation.map_batches(lambda x: _features(model, params, x),
                                images, batch_size)


def to_float(images: Array) -> Array:
  """uint8 pixels -> [0, 1] floats."""
  return images.astype(jnp.float32) / 255.0


def make_task(config: ml_collections.ConfigDict, train_data, test_data, mesh=None
              ) -> train_lib.Task:
  """The ``train.Task`` of one CPC run on (uint8 images, labels) splits.

  Every evaluation fits the shared linear probe (``evaluation.linear_probe``,
  L-BFGS) on each of ``FEATURES`` of the first ``config.probe_train_examples``
  train images and reports test accuracy (``{feature}_linear``), plus the test
  estimate of every offset (``infonce_k{k}``, mean over ``eval_batches``
  fixed batches of ``evaluation.eval_keys``) beside its ceiling log N
  (``log_n_k{k}``).
  """
  model = make_model(config)
  images, labels = train_data
  test_images, test_labels = jnp.asarray(test_data[0]), test_data[1]
  n_probe = config.probe_train_examples or images.shape[0]
  probe_images, probe_labels = jnp.asarray(images[:n_probe]), labels[:n_probe]
  loss = make_loss(model, config, mesh)

  def init_fn(key):
    params = model.init(key, to_float(jnp.zeros((2,) + images.shape[1:])))['params']
    return params, ()

  def sample(data, key):
    idx = data_lib.batch_indices(key, data['images'].shape[0], config.batch_size)
    return {'x': to_float(data['images'][idx])}

  @jax.jit
  def batch_estimates(params, key):
    idx = data_lib.batch_indices(key, test_images.shape[0], config.batch_size)
    out = model.apply({'params': params}, to_float(test_images[idx]))
    return objective(out, model.offsets, bound='infonce')[1]

  def evaluate(params, aux, step):
    del aux
    if step == 0 and config.num_steps > 0 and not config.get('eval_at_init', False):
      return {}
    encode = lambda x: encode_features(model, params, to_float(x))
    train_feats, test_feats = encode(probe_images), encode(test_images)
    record = {}
    for name in FEATURES:
      record[f'{name}_linear'] = evaluation.linear_probe(
          train_feats[name], probe_labels, test_feats[name], test_labels,
          steps=config.probe_steps)['accuracy']
    keys = evaluation.eval_keys(config.seed, 'infonce_test', config.eval_batches)
    per_batch = [jax.device_get(batch_estimates(params, k)) for k in keys]
    for name in per_batch[0]:   # infonce_k{k} -> infonce_test_k{k}; log_n_k{k}
      record[name.replace('infonce_', 'infonce_test_')] = float(
          np.mean([m[name] for m in per_batch]))
    return record

  return train_lib.Task(init=init_fn, sample=sample, loss=loss,
                        data={'images': jnp.asarray(images)}, evaluate=evaluate)
