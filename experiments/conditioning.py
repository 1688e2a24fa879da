"""Jacobian-conditioning experiment (Tschannen et al. 2020, Fig. 2), any encoder.

  python -m experiments.conditioning --config=experiments/configs/conditioning.py:quick \
      --workdir=runs/conditioning_quick
  python -m experiments.conditioning --config=experiments/configs/conditioning.py:dim \
      --workdir=runs/conditioning_dim

``config.setting = 'twoview'`` (Fig. 2): two-view training with residual-MLP
encoders; the Jacobian is g1's on fixed clean training top halves (392-d).
``config.setting = 'dim'``: a Deep InfoMax encoder (``infomax_jax.dim``) on
32×32×3 images (MNIST / Fashion-MNIST zero-padded to 32×32 and tiled to three
channels, or CIFAR-10 where tfds has it); the Jacobian is that of Y (64-d) with
respect to the 3072 pixels.

Every evaluation records, over ``config.jacobian_examples`` fixed inputs: the
percentiles of log kappa of the exact Jacobian (``log_cond_p0`` ...
``log_cond_p100``), the mean effective rank of its spectrum (``eff_rank``),
the matrix-free estimate (``jacobian.log_condition_numbers(...,
method='matrix_free', rtol=config.jacobian_rtol)``: its median, the fraction
of inputs it certified and its largest deviation from the exact value), the
seconds of both paths, and a linear probe's accuracy. The spectra go to
``spectra/step_NNNNNNN.npy``; ``conditioning.png`` (Fig. 2 panels, twoview)
and ``spectra.png`` (spectrum at init vs end; kappa and effective rank vs
step) to --workdir. Rerunning the same command resumes.
"""

import dataclasses
import glob
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import data as data_lib
from infomax_jax import dim as dim_lib
from infomax_jax import evaluation
from infomax_jax import jacobian
from infomax_jax import runs
from infomax_jax import train as train_lib
from infomax_jax import tschannen
from infomax_jax import twoview

PERCENTILE_KEYS = tuple(f'log_cond_p{int(q)}' for q in jacobian.PERCENTILES)
SETTINGS = ('twoview', 'dim')
SPECTRA_DIR = 'spectra'
IMAGE_SHAPE = (32, 32, 3)


def conditioning_eval(config: ml_collections.ConfigDict,
                      apply_fn: Callable[[Any, jax.Array], jax.Array],
                      inputs: jax.Array, workdir: str | None = None
                      ) -> Callable[[Any, int], dict[str, float]]:
  """``(params, step) -> record`` of the Jacobian of ``v -> apply_fn(params, v)``.

  Exact spectra (``jacobian.singular_values``, chunks of
  ``config.jacobian_chunk``) and the matrix-free log kappa at the (B, n)
  ``inputs``; each path compiled once, then timed alone. With ``workdir``,
  the (B, min(m, n)) spectra are saved to ``workdir/spectra/step_NNNNNNN.npy``.
  """
  chunk = config.jacobian_chunk

  @jax.jit
  def exact(params):
    return jacobian.singular_values(lambda v: apply_fn(params, v), inputs,
                                    chunk_size=chunk)

  @jax.jit
  def matrix_free(params):
    return jacobian.log_condition_numbers(
        lambda v: apply_fn(params, v), inputs, method='matrix_free',
        rtol=config.jacobian_rtol, max_iters=config.jacobian_max_iters,
        chunk_size=chunk)

  compiled = {}

  def timed(name, fn, params):
    if name not in compiled:
      compiled[name] = fn.lower(params).compile()
    start = time.perf_counter()
    out = jax.block_until_ready(compiled[name](params))
    return out, time.perf_counter() - start

  def evaluate(params, step):
    s, exact_seconds = timed('exact', exact, params)
    mf, mf_seconds = timed('matrix_free', matrix_free, params)
    s = np.asarray(s, np.float64)
    log_k = np.where(s[:, -1] > 0, np.log(s[:, 0]) - np.log(s[:, -1]), np.inf)
    record = dict(zip(PERCENTILE_KEYS, (float(v) for v in jacobian.percentiles(log_k))))
    certified = np.asarray(mf.converged)
    mf_log_k = np.asarray(mf.log_kappa, np.float64)
    record.update(
        eff_rank=float(np.mean(jacobian.effective_rank(s))),
        log_sigma_max=float(np.median(np.log(s[:, 0]))),
        log_sigma_min=float(np.median(np.log(s[:, -1]))),
        mf_log_cond_p50=float(np.median(mf_log_k)),
        mf_certified=float(np.mean(certified)),
        # Over the certified inputs only (0 if none): what the flag promises.
        mf_max_abs_error=float(np.max(np.abs(mf_log_k - log_k)[certified], initial=0.0)),
        mf_iters=int(np.max(np.asarray(mf.num_iters))),
        exact_seconds=exact_seconds, matrix_free_seconds=mf_seconds)
    if workdir is not None:
      os.makedirs(os.path.join(workdir, SPECTRA_DIR), exist_ok=True)
      np.save(os.path.join(workdir, SPECTRA_DIR, f'step_{int(step):07d}.npy'),
              s.astype(np.float32))
    return record

  return evaluate


# --- Fig. 2: two views, residual-MLP encoders ---------------------------------

def make_task(config, train_views, test_views, *, workdir: str | None = None,
              **kwargs):
  """The two-view task with the conditioning hook on g1 (top halves)."""
  model = twoview.make_model(config)
  g1 = lambda params, v: model.apply({'params': params}, v,
                                     method=twoview.TwoView.encode_x)
  tops = train_views.tops()[:config.jacobian_examples]
  return twoview.make_task(config, train_views, test_views,
                           extra_eval=conditioning_eval(config, g1, tops, workdir),
                           **kwargs)


def _run_twoview(config: ml_collections.ConfigDict, workdir: str):
  state = tschannen.run(
      config, workdir, make_task=lambda *a, **k: make_task(*a, workdir=workdir, **k),
      filename='conditioning.png',
      title=f'residual-MLP encoders ({config.encoder_kwargs.num_layers} '
            f'blocks), {config.bound}',
      extra_panels=[(PERCENTILE_KEYS, r'log $\kappa(\partial g_1/\partial x)$')])
  spectra_figure(workdir, f'Fig. 2 setting: g1 = residual MLP '
                          f'({config.encoder_kwargs.width}-d), {config.bound}',
                 accuracy_key='probe_accuracy')
  return state


# --- Deep InfoMax on 32×32×3 images --------------------------------------------

def to_rgb32(images: np.ndarray) -> np.ndarray:
  """uint8 images (N, H, W) or (N, H, W, C), H, W <= 32, as (N, 32, 32, 3):
  zero-padded symmetrically to 32×32, grey images tiled to three channels."""
  images = np.asarray(images)
  shape = images.shape
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[1] > 32 or images.shape[2] > 32 or \
      images.shape[3] not in (1, 3):
    raise ValueError(f'expected images (N, H, W[, 1 or 3]) with H, W <= 32, got '
                     f'shape {shape}')
  ph, pw = 32 - images.shape[1], 32 - images.shape[2]
  images = np.pad(images, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2),
                           (0, 0)))
  return np.repeat(images, 3 // images.shape[3], axis=3)


def dim_task(config: ml_collections.ConfigDict, train_data, test_data,
             workdir: str | None = None) -> train_lib.Task:
  """The DIM training task with a conditioning-and-probe evaluation.

  The evaluation replaces DIM's (probes on conv/fc/Y, prior distances) by
  the conditioning record of Y's Jacobian (3072 -> 64) plus the test
  accuracy of a linear probe on Y (``config.probe_train_examples`` train
  images, L-BFGS ``config.probe_steps``).
  """
  task = dim_lib.make_task(config, train_data, test_data)
  model = dim_lib.make_model(config)
  images, labels = train_data
  inputs = jnp.asarray(images[:config.jacobian_examples], jnp.float32) / 255.0
  inputs = inputs.reshape(inputs.shape[0], -1)
  n_probe = config.probe_train_examples or images.shape[0]
  probe_images, probe_labels = jnp.asarray(images[:n_probe]), labels[:n_probe]
  test_images, test_labels = jnp.asarray(test_data[0]), test_data[1]

  def y_of(variables, v):
    out = model.apply(variables, v.reshape((1,) + IMAGE_SHAPE),
                      method=dim_lib.DeepInfoMax.features)
    return out['y'][0]

  hook = conditioning_eval(config, y_of, inputs, workdir)

  def evaluate(params, stats, step):
    variables = {'params': params['model'], **({'batch_stats': stats} if stats else {})}
    record = hook(variables, step)
    encode = lambda x: dim_lib.encode_features(
        model, params['model'], stats, x.astype(jnp.float32) / 255.0)['y']
    record['probe_accuracy'] = evaluation.linear_probe(
        encode(probe_images), probe_labels, encode(test_images), test_labels,
        steps=config.probe_steps)['accuracy']
    return record

  return dataclasses.replace(task, evaluate=evaluate)


def _run_dim(config: ml_collections.ConfigDict, workdir: str):
  (train_x, train_y), (test_x, test_y) = data_lib.load_splits(config)
  train_data, test_data = (to_rgb32(train_x), train_y), (to_rgb32(test_x), test_y)
  state = train_lib.train(config, dim_task(config, train_data, test_data, workdir),
                          workdir)
  path = spectra_figure(
      workdir, f'DIM encoder ({config.dataset} as 32×32×3 -> Y '
               f'{config.encoder_kwargs.features}-d), {config.estimator}, '
               f'{config.num_steps} steps', accuracy_key='probe_accuracy')
  print(f'wrote {path}; training wall time {runs.seconds(workdir) / 60:.1f} min',
        flush=True)
  return state


# --- the figure -------------------------------------------------------------------

def load_spectra(workdir: str) -> dict[int, np.ndarray]:
  """step -> (B, r) exact singular values saved by the evaluations."""
  paths = sorted(glob.glob(os.path.join(workdir, SPECTRA_DIR, 'step_*.npy')))
  return {int(os.path.basename(p)[5:-4]): np.load(p) for p in paths}


def spectra_figure(workdir: str, title: str, accuracy_key: str | None = None) -> str:
  """spectra.png: the spectrum (median over inputs, 10-90 % band) at the first
  and last evaluation; log kappa percentiles (exact) and the matrix-free
  median vs step; effective rank vs step; and the probe accuracy."""
  evals = [r for r in runs.read_metrics(workdir, 'eval') if PERCENTILE_KEYS[0] in r]
  spectra = load_spectra(workdir)
  fig, axes = runs.plots.panels(4 if accuracy_key else 3, width=4.6, height=3.6)
  ax = axes[0]
  for step, color in ((min(spectra), 'tab:blue'), (max(spectra), 'tab:red')):
    s = spectra[step]
    index = np.arange(1, s.shape[1] + 1)
    ax.plot(index, np.median(s, axis=0), color=color, label=f'step {step}')
    ax.fill_between(index, np.percentile(s, 10, axis=0), np.percentile(s, 90, axis=0),
                    color=color, alpha=0.2)
  ax.set_yscale('log')
  runs.plots.labels(ax, 'index i', r'$\sigma_i(J)$ (median, 10-90 %)', legend=True)
  steps = [r['step'] for r in evals]
  runs.plots.percentile_bands(axes[1], steps, [[r[k] for r in evals]
                                               for k in PERCENTILE_KEYS])
  axes[1].plot(steps, [r['mf_log_cond_p50'] for r in evals], 'k.',
               label='matrix-free median')
  runs.plots.labels(axes[1], 'step', r'log $\kappa$ (exact percentiles)', legend=True)
  axes[2].plot(steps, [r['eff_rank'] for r in evals], 'o-')
  runs.plots.labels(axes[2], 'step', 'effective rank (mean)')
  if accuracy_key:
    axes[3].plot(steps, [r[accuracy_key] for r in evals], 'o-')
    runs.plots.labels(axes[3], 'step', 'linear-probe test accuracy')
  return runs.plots.save(fig, os.path.join(workdir, 'spectra.png'), title)


def run(config: ml_collections.ConfigDict, workdir: str):
  """Trains ``config.setting`` with the conditioning evaluation; draws the figures."""
  if config.setting not in SETTINGS:
    raise ValueError(f'unknown setting {config.setting!r}; valid settings are: '
                     f'{", ".join(SETTINGS)}')
  return (_run_twoview if config.setting == 'twoview' else _run_dim)(config, workdir)


if __name__ == '__main__':
  runs.main(run, __file__)
