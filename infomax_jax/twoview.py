"""Two-view MI maximization on image halves (Tschannen et al., ICLR 2020, Sec. 3).

x = top half, y = bottom half of an image (each 392 pixels / 255 for MNIST);
encoders g1(x), g2(y); a critic scores every (g1(x_i), g2(y_j)) pair of a batch;
the loss is minus an MI lower bound (or |I_EST - t| for a target t, Fig. 4a/b).
Every evaluation reports the train/test MI estimate (and any further bounds
of the same critic) on fixed batches (``evaluation.eval_keys``) and the
accuracy of a linear probe on g1 of the clean top halves. The experiment
driver around it (data, cached baselines, training, figures) is
``infomax_jax.tschannen``.

Config fields (besides those of ``infomax_jax.train``):
  dataset, data_dir, encoder, encoder_kwargs (ConfigDict; for 'realnvp' the
  two encoders get permutation seeds 0 and 1), critic, critic_kwargs, bound
  (a ``bounds.REGISTRY`` name of the scores alone), noise_std, target_mi (None: maximize),
  eval_batches, probe_steps, probe_warm_steps (later probes of a run start
  from the previous fit; 0: every fit cold), num_seeds (replicas, see
  ``infomax_jax.train``), train_examples (> 0: only the first N train
  images), embed_chunk (optional: encode in chunks of this many rows with
  gradient caching, ``infomax_jax.gradcache``; same gradients, encoder memory
  O(embed_chunk) instead of O(batch_size)).
"""

import collections
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import data as data_lib
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import gradcache
from infomax_jax import train as train_lib

Array = jax.Array

class TwoView(nn.Module):
  """g1 on x, g2 on y, and a critic on the codes: ``__call__`` gives (K, K) scores."""
  encoder_x: nn.Module
  encoder_y: nn.Module
  critic: nn.Module

  def __call__(self, x: Array, y: Array) -> Array:
    return self.critic(self.encoder_x(x), self.encoder_y(y))

  def encode_x(self, x: Array) -> Array:
    return self.encoder_x(x)


def module_kwargs(cfg) -> dict[str, Any]:
  """A config's kwargs dict for a module constructor (lists become tuples)."""
  if cfg is None:
    return {}
  out = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
  return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def make_model(config: ml_collections.ConfigDict) -> TwoView:
  """The ``TwoView`` module of ``config`` (encoder, critic by registry name)."""
  enc_kwargs = module_kwargs(config.get('encoder_kwargs'))
  if config.encoder == 'realnvp':   # distinct fixed permutations for g1 and g2
    g1 = encoders.make_encoder('realnvp', permutation_seed=0, **enc_kwargs)
    g2 = encoders.make_encoder('realnvp', permutation_seed=1, **enc_kwargs)
  else:
    g1 = encoders.make_encoder(config.encoder, **enc_kwargs)
    g2 = encoders.make_encoder(config.encoder, **enc_kwargs)
  critic = critics.make_critic(config.critic, **module_kwargs(config.get('critic_kwargs')))
  return TwoView(g1, g2, critic)


def mi_objective(config) -> Callable[[Array], tuple[Array, dict[str, Array]]]:
  """scores -> (loss, metrics): minus the bound's objective, or |I_EST - t| when
  config.target_mi is set; ``metrics['mi']`` is the estimate the bound reports."""
  spec = bounds.get(config.bound, scores_only=True)
  target = config.get('target_mi')

  def objective(scores):
    out = spec(scores)   # the objective trains; the registry says what it reports
    loss = -out.objective if target is None else jnp.abs(out.estimate - target)
    return loss, {'mi': out.estimate}

  return objective


class Views:
  """Top/bottom views of one split, as uint8 images and labels on the host.

  ``limit`` > 0 keeps only the first that many examples (CPU variants).
  """

  def __init__(self, config, split: str, limit: int = 0):
    self.images, self.labels = data_lib.load(
        config.dataset, split, data_dir=config.get('data_dir') or None,
        limit=limit)

  def tops(self) -> Array:
    return data_lib.top_bottom_views(jnp.asarray(self.images))[0]


def sample_views(batch_size: int, noise_std: float):
  """``(data, key) -> {'x': tops, 'y': bottoms}``: a random batch, noisy views."""
  def sample(data, key):
    idx_key, nx, ny = jax.random.split(key, 3)
    idx = data_lib.batch_indices(idx_key, data['images'].shape[0], batch_size)
    top, bottom = data_lib.top_bottom_views(data['images'][idx])
    return {'x': data_lib.add_noise(nx, top, noise_std),
            'y': data_lib.add_noise(ny, bottom, noise_std)}
  return sample


def make_estimator(config, model: TwoView, bound_names: Sequence[str]):
  """``(params, images, purpose) -> {name: mean over fixed batches}``.

  Each bound of ``bound_names`` is evaluated on the same ``config.eval_batches``
  batches (drawn as in training, noise included) from
  ``evaluation.eval_keys(seed, purpose, ...)`` (``seed`` defaults to
  ``config.seed``): the same batches at every evaluation of a run.
  """
  bound_fns = {name: bounds.get(name, scores_only=True).estimate
               for name in bound_names}
  sample = sample_views(config.batch_size, config.noise_std)

  @jax.jit
  def estimate(params, images, keys):
    def one(key):
      batch = sample({'images': images}, key)
      scores = model.apply({'params': params}, batch['x'], batch['y'])
      return {name: fn(scores) for name, fn in bound_fns.items()}
    return jax.tree.map(jnp.mean, jax.lax.map(one, keys))

  def run(params, images, purpose: str, seed: Optional[int] = None) -> dict[str, Array]:
    """``seed``: of the evaluation keys (default ``config.seed``)."""
    seed = config.seed if seed is None else seed
    keys = evaluation.eval_keys(seed, purpose, config.eval_batches)
    return estimate(params, images, keys)

  return run


def make_encode(apply_fn: Callable[[Any, Array], Array], batch_size: int = 1000):
  """Jitted ``(params, x) -> codes`` over ``x`` in chunks of ``batch_size``."""
  # lax.map(batch_size=...) vmaps f over single examples: give the encoder a
  # batch of one, since batched-only encoders (ConvNet) reject a lone (D,).
  return jax.jit(lambda params, x: jax.lax.map(
      lambda v: apply_fn(params, v[None])[0], x, batch_size=batch_size))


def make_task(config, train_views: Views, test_views: Views, *,
              extra_eval: Optional[Callable[[Any, int], dict]] = None,
              baselines: Optional[dict] = None,
              eval_bounds: Sequence[str] = ()) -> train_lib.Task:
  """The ``train.Task`` of two-view training, with the probe/MI evaluation hook.

  Every evaluation records ``mi_train`` / ``mi_test`` (the trained bound on
  fixed train / test batches), ``{b}_test`` for each extra bound ``b`` of
  ``eval_bounds`` (same critic, same test batches) and ``probe_accuracy``.
  With ``config.probe_warm_steps`` > 0 the probe's first fit (of each seed, in
  this process) runs ``probe_steps`` L-BFGS iterations from zero and every
  later fit ``probe_warm_steps`` from the previous fit's weights; so the first
  evaluation after a resume is a cold fit (within ~0.2 points of a warm one).

  Args:
    config: experiment config (see the module docstring).
    train_views, test_views: the data splits.
    extra_eval: optional ``(params, step) -> dict`` added to each evaluation
      (e.g. Jacobian condition numbers).
    baselines: optional dict merged into every evaluation record.
    eval_bounds: further bounds to report on the test batches.
  """
  model = make_model(config)
  objective = mi_objective(config)
  sample = sample_views(config.batch_size, config.noise_std)
  dim = train_views.images.shape[1] * train_views.images.shape[2] // 2

  def init(key):
    x = jnp.zeros((2, dim), jnp.float32)
    return model.init(key, x, x)['params'], ()

  embed_chunk = config.get('embed_chunk')

  def loss(params, aux, batch, key):
    if embed_chunk:     # GradCache: the same scores and gradients, chunked encoders
      scores = gradcache.two_view_scores(model, params, batch['x'], batch['y'],
                                         embed_chunk)
    else:
      scores = model.apply({'params': params}, batch['x'], batch['y'])
    value, metrics = objective(scores)
    return value, (metrics, aux)

  extra = [b for b in eval_bounds if b != config.bound]
  estimate = make_estimator(config, model, [config.bound, *extra])
  encode = make_encode(lambda params, x: model.apply(
      {'params': params}, x, method=TwoView.encode_x))
  train_tops, test_tops = train_views.tops(), test_views.tops()
  train_images = jnp.asarray(train_views.images)
  test_images = jnp.asarray(test_views.images)
  # Each seed's probe starts from its previous fit (probe_warm_steps > 0): the
  # features move little between evaluations, so ~150 L-BFGS iterations from
  # there match a 500-iteration cold fit to ~0.1 points (BUILD_NOTES).
  probe_steps = config.get('probe_steps', 500)
  warm_steps = min(config.get('probe_warm_steps', 0), probe_steps)
  warm = collections.defaultdict(evaluation.WarmStart)

  def evaluate(params, aux, step, seed=None):
    del aux   # seed: of this replica's evaluation batches (default config.seed)
    on_test = estimate(params, test_images, 'mi_test', seed)
    record = {'mi_train': estimate(params, train_images, 'mi_train', seed)[config.bound],
              'mi_test': on_test[config.bound],
              **{f'{b}_test': on_test[b] for b in eval_bounds}}
    start = warm[seed] if warm_steps else None
    cold = start is None or start.params is None
    probe = evaluation.linear_probe(
        encode(params, train_tops), train_views.labels,
        encode(params, test_tops), test_views.labels,
        steps=probe_steps if cold else warm_steps,
        warm_start=start)
    record['probe_accuracy'] = probe['accuracy']
    if extra_eval is not None:
      record.update(extra_eval(params, step))
    record.update(baselines or {})
    return record

  return train_lib.Task(init=init, sample=sample, loss=loss,
                        data={'images': train_images}, evaluate=evaluate)


def pixel_baselines(config, train_views: Views, test_views: Views) -> dict:
  """Linear-probe accuracy on top-half pixels, clean and with input noise."""
  train_tops, test_tops = train_views.tops(), test_views.tops()
  key_train, key_test = jax.random.split(
      evaluation.eval_key(config.seed, 'baseline_noise'))
  steps = config.get('probe_steps', 500)
  clean = evaluation.linear_probe(train_tops, train_views.labels, test_tops,
                              test_views.labels, steps=steps)['accuracy']
  noisy = evaluation.linear_probe(
      data_lib.add_noise(key_train, train_tops, config.noise_std),
      train_views.labels,
      data_lib.add_noise(key_test, test_tops, config.noise_std),
      test_views.labels, steps=steps)['accuracy']
  return {'baseline_clean_pixels': float(clean), 'baseline_noisy_pixels': float(noisy)}
