"""Two-view MI maximization on image halves (Tschannen et al., ICLR 2020, Sec. 3).

x = top half, y = bottom half of an image (each 392 pixels / 255 for MNIST);
encoders g1(x), g2(y); a critic scores every (g1(x_i), g2(y_j)) pair of a batch;
the loss is minus an MI lower bound (or |I_EST - t| for a target t, Fig. 4a/b).
Every evaluation reports the train/test MI estimate and the accuracy of a
linear probe on g1 of the clean top halves; the pixel baselines are computed
once. Used by the invertible, conditioning, critics and target_mi experiments.

Config fields (besides those of ``infomax_jax.train``):
  dataset, data_dir, encoder, encoder_kwargs (ConfigDict; for 'realnvp' the
  two encoders get permutation seeds 0 and 1), critic, critic_kwargs, bound
  (one of ``SCORE_BOUNDS``), noise_std, target_mi (None: maximize), 
  eval_batches, probe_steps.
"""

import json
import os
import time
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import runs
from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import data as data_lib
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import registry
from infomax_jax import train as train_lib

Array = jax.Array

# Bounds that are functions of the score matrix alone.
SCORE_BOUNDS: dict[str, Callable[[Array], Array]] = {
    'infonce': bounds.infonce,
    'nwj': bounds.nwj,
    'dv': bounds.dv,
    'jsd': bounds.jsd,
}


class TwoView(nn.Module):
  """g1 on x, g2 on y, and a critic on the codes: ``__call__`` gives (K, K) scores."""
  encoder_x: nn.Module
  encoder_y: nn.Module
  critic: nn.Module

  def __call__(self, x: Array, y: Array) -> Array:
    return self.critic(self.encoder_x(x), self.encoder_y(y))

  def encode_x(self, x: Array) -> Array:
    return self.encoder_x(x)


def _kwargs(cfg) -> dict[str, Any]:
  if cfg is None:
    return {}
  out = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
  return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def make_model(config: ml_collections.ConfigDict) -> TwoView:
  """The ``TwoView`` module of ``config`` (encoder, critic by registry name)."""
  enc_kwargs = _kwargs(config.get('encoder_kwargs'))
  if config.encoder == 'realnvp':   # distinct fixed permutations for g1 and g2
    g1 = encoders.make_encoder('realnvp', permutation_seed=0, **enc_kwargs)
    g2 = encoders.make_encoder('realnvp', permutation_seed=1, **enc_kwargs)
  else:
    g1 = encoders.make_encoder(config.encoder, **enc_kwargs)
    g2 = encoders.make_encoder(config.encoder, **enc_kwargs)
  critic = critics.make_critic(config.critic, **_kwargs(config.get('critic_kwargs')))
  return TwoView(g1, g2, critic)


def mi_objective(config) -> Callable[[Array], tuple[Array, dict[str, Array]]]:
  """scores -> (loss, metrics): -I_EST, or |I_EST - t| when config.target_mi is set."""
  bound = registry.lookup(SCORE_BOUNDS, config.bound, 'bound')
  target = config.get('target_mi')

  def objective(scores):
    estimate = bound(scores)
    loss = -estimate if target is None else jnp.abs(estimate - target)
    return loss, {'mi': estimate}

  return objective


class Views:
  """Top/bottom views of one split, as uint8 images and labels on the host."""

  def __init__(self, config, split: str):
    self.images, self.labels = data_lib.load(
        config.dataset, split, data_dir=config.get('data_dir') or None)

  def tops(self) -> Array:
    return data_lib.top_bottom_views(jnp.asarray(self.images))[0]


def _sample(batch_size: int, noise_std: float):
  def sample(data, key):
    idx_key, nx, ny = jax.random.split(key, 3)
    idx = data_lib.batch_indices(idx_key, data['images'].shape[0], batch_size)
    top, bottom = data_lib.top_bottom_views(data['images'][idx])
    return {'x': data_lib.add_noise(nx, top, noise_std),
            'y': data_lib.add_noise(ny, bottom, noise_std)}
  return sample


def make_task(config, train_views: Views, test_views: Views, *,
              extra_eval: Optional[Callable[[Any, int], dict]] = None,
              baselines: Optional[dict] = None) -> train_lib.Task:
  """The ``train.Task`` of two-view training, with the probe/MI evaluation hook.

  Args:
    config: experiment config (see the module docstring).
    train_views, test_views: the data splits.
    extra_eval: optional ``(params, step) -> dict`` added to each evaluation
      (e.g. Jacobian condition numbers).
    baselines: optional dict merged into every evaluation record.
  """
  model = make_model(config)
  objective = mi_objective(config)
  sample = _sample(config.batch_size, config.noise_std)
  dim = train_views.images.shape[1] * train_views.images.shape[2] // 2

  def init(key):
    x = jnp.zeros((2, dim), jnp.float32)
    return model.init(key, x, x)['params'], ()

  def loss(params, aux, batch, key):
    scores = model.apply({'params': params}, batch['x'], batch['y'])
    value, metrics = objective(scores)
    return value, (metrics, aux)

  # Held-out MI estimates on fixed batches (same keys at every evaluation).
  @jax.jit
  def estimate(params, images):
    def one(key):
      batch = sample({'images': images}, key)
      return mi_objective(config)(
          model.apply({'params': params}, batch['x'], batch['y']))[1]['mi']
    keys = jax.random.split(jax.random.PRNGKey(1234), config.eval_batches)
    return jnp.mean(jax.lax.map(one, keys))

  # lax.map(batch_size=...) vmaps f over single examples: give the encoder a
  # batch of one, since batched-only encoders (ConvNet) reject a lone (D,).
  encode = jax.jit(lambda params, x: jax.lax.map(
      lambda v: model.apply({'params': params}, v[None],
                            method=TwoView.encode_x)[0],
      x, batch_size=1000))
  train_tops, test_tops = train_views.tops(), test_views.tops()
  train_images = jnp.asarray(train_views.images)
  test_images = jnp.asarray(test_views.images)

  def evaluate(params, aux, step):
    del aux
    record = {
        'mi_train': estimate(params, train_images),
        'mi_test': estimate(params, test_images),
    }
    probe = evaluation.linear_probe(
        encode(params, train_tops), train_views.labels,
        encode(params, test_tops), test_views.labels,
        steps=config.get('probe_steps', 500))
    record['probe_accuracy'] = probe['accuracy']
    if extra_eval is not None:
      record.update(extra_eval(params, step))
    record.update(baselines or {})
    return record

  return train_lib.Task(init=init, sample=sample, loss=loss,
                        data={'images': jnp.asarray(train_views.images)},
                        evaluate=evaluate)


def pixel_baselines(config, train_views: Views, test_views: Views) -> dict:
  """Linear-probe accuracy on top-half pixels, clean and with input noise."""
  train_tops, test_tops = train_views.tops(), test_views.tops()
  key_train, key_test = jax.random.split(jax.random.PRNGKey(config.seed + 777))
  steps = config.get('probe_steps', 500)
  clean = evaluation.linear_probe(train_tops, train_views.labels, test_tops,
                              test_views.labels, steps=steps)['accuracy']
  noisy = evaluation.linear_probe(
      data_lib.add_noise(key_train, train_tops, config.noise_std),
      train_views.labels,
      data_lib.add_noise(key_test, test_tops, config.noise_std),
      test_views.labels, steps=steps)['accuracy']
  return {'baseline_clean_pixels': float(clean), 'baseline_noisy_pixels': float(noisy)}


def plot(workdir: str, title: str, filename: str, log_k: Optional[float] = None,
         extra_panels: Optional[list[tuple[Any, str]]] = None) -> str:
  """Fig. 1a/b style figure from ``workdir/metrics.jsonl``: I_EST and accuracy vs step.

  ``extra_panels``: (key, y-label) per extra panel; a tuple of keys (ascending
  percentiles) draws shaded bands between symmetric pairs (Fig. 2 style).
  """
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  evals = runs.read_metrics(workdir, 'eval')
  steps = [r['step'] for r in evals]
  panels = 2 + len(extra_panels or [])
  fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6))
  ax = axes[0]
  ax.plot(steps, [r['mi_train'] for r in evals], 'o-', label='train')
  ax.plot(steps, [r['mi_test'] for r in evals], 's--', label='test')
  if log_k is not None:
    ax.axhline(log_k, color='gray', ls=':', label='log K')
  ax.set_xlabel('iteration'); ax.set_ylabel('$I_{EST}$ (nats)'); ax.legend()
  ax = axes[1]
  ax.plot(steps, [r['probe_accuracy'] for r in evals], 'o-', label='g1(top) probe')
  last = evals[-1]
  for key, style in (('baseline_noisy_pixels', 'r--'), ('baseline_clean_pixels', 'k:')):
    if key in last:
      ax.axhline(last[key], color=style[0], ls=style[1:],
                 label=key.replace('baseline_', 'pixels, ').replace('_pixels', ''))
  ax.set_xlabel('iteration'); ax.set_ylabel('test accuracy'); ax.legend()
  for ax, (key, label) in zip(axes[2:], extra_panels or []):
    if isinstance(key, str):
      ax.plot(steps, [r[key] for r in evals], 'o-')
    else:   # several keys (e.g. percentiles, ascending): bands between pairs
      curves = [np.array([r[k] for r in evals]) for k in key]
      for lo, hi in zip(curves[:len(curves) // 2], curves[::-1]):
        ax.fill_between(steps, lo, hi, color='C0', alpha=0.2)
      for k, curve in zip(key, curves):
        ax.plot(steps, curve, '-', lw=0.8, color='C0')
    ax.set_xlabel('iteration'); ax.set_ylabel(label)
  fig.suptitle(title)
  fig.tight_layout()
  path = os.path.join(workdir, filename)
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def run(config: ml_collections.ConfigDict, workdir: str, *, title: str,
        filename: str, extra_eval=None,
        extra_panels: Optional[list[tuple[Any, str]]] = None
        ) -> train_lib.TrainState:
  """Loads data, computes the pixel baselines (cached in workdir), trains, plots."""
  os.makedirs(workdir, exist_ok=True)
  train_views, test_views = Views(config, 'train'), Views(config, 'test')
  base_path = os.path.join(workdir, 'baselines.json')
  if os.path.exists(base_path):
    with open(base_path) as f:
      baselines = json.load(f)
  else:
    t0 = time.time()
    baselines = pixel_baselines(config, train_views, test_views)
    with open(base_path, 'w') as f:
      json.dump(baselines, f)
    print(f'pixel baselines: {baselines} ({time.time() - t0:.1f}s)', flush=True)
  task = make_task(config, train_views, test_views, extra_eval=extra_eval,
                   baselines=baselines)
  t0 = time.time()
  state = train_lib.train(config, task, workdir)
  wall = time.time() - t0
  log_k = float(np.log(config.batch_size)) if config.bound == 'infonce' else None
  path = plot(workdir, title, filename, log_k=log_k, extra_panels=extra_panels)
  print(f'wrote {path}; training wall time {wall / 60:.1f} min', flush=True)
  with open(os.path.join(workdir, 'wall_time.json'), 'w') as f:
    json.dump({'train_seconds': wall}, f)
  return state
