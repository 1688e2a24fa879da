"""Non-i.i.d. negatives inflate MI estimates (Tschannen et al. 2020, Fig. 4c).

  python -m experiments.noniid --config=experiments/configs/noniid.py \
      --workdir=runs/noniid

Trains one concat critic per (sampling, bound) of the config, each in
``--workdir/<sampling>_<bound>`` (metrics.jsonl, checkpoints/; a rerun
resumes), then writes ``noniid.png`` (held-out estimates vs step against the
true MI) and ``summary.json`` (final estimates, wall times) to --workdir.
"""

import json
import os
import time
from typing import Callable

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_flags

from infomax_jax import runs
from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import registry
from infomax_jax import train as train_lib

Array = jax.Array

SAMPLINGS = ('noniid', 'iid')
BOUNDS: dict[str, Callable[[Array], Array]] = {
    'infonce': bounds.infonce, 'nwj': bounds.nwj}


def _cov(cov, name: str) -> np.ndarray:
  cov = np.asarray(cov, np.float64)
  if cov.shape != (2, 2):
    raise ValueError(f'{name} must be a 2x2 covariance, got shape {cov.shape}')
  if not np.allclose(cov, cov.T) or np.any(np.linalg.eigvalsh(cov) <= 0):
    raise ValueError(f'{name} must be symmetric positive definite, got {cov.tolist()}')
  return cov


def true_mi(latent_cov, noise_cov) -> float:
  """I(x; y) of one pair (x, y) = z + eps: a bivariate Gaussian, -1/2 log(1 - rho^2).

  Args:
    latent_cov: 2x2 covariance of the shared latent z = (z_x, z_y).
    noise_cov: 2x2 covariance of the per-pair noise eps.

  Returns:
    The MI in nats of N(0, latent_cov + noise_cov).
  """
  cov = _cov(latent_cov, 'latent_cov') + _cov(noise_cov, 'noise_cov')
  rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
  return float(-0.5 * np.log1p(-rho ** 2))


def make_sampler(latent_cov, noise_cov, sampling: str, batch_size: int
                 ) -> Callable[[jax.Array], dict[str, Array]]:
  """``key -> {'x': (K, 1), 'y': (K, 1)}`` with pairs z + eps_i.

  Args:
    latent_cov, noise_cov: 2x2 covariances of z and eps.
    sampling: 'noniid' (one z for the whole batch) or 'iid' (one z per pair).
    batch_size: K.
  """
  registry.lookup(dict.fromkeys(SAMPLINGS), sampling, 'sampling')
  chol_z = jnp.asarray(np.linalg.cholesky(_cov(latent_cov, 'latent_cov')), jnp.float32)
  chol_e = jnp.asarray(np.linalg.cholesky(_cov(noise_cov, 'noise_cov')), jnp.float32)
  num_z = 1 if sampling == 'noniid' else batch_size

  def sample(key):
    kz, ke = jax.random.split(key)
    z = jax.random.normal(kz, (num_z, 2)) @ chol_z.T
    pairs = z + jax.random.normal(ke, (batch_size, 2)) @ chol_e.T
    return {'x': pairs[:, :1], 'y': pairs[:, 1:]}

  return sample


def make_task(config: ml_collections.ConfigDict, sampling: str,
              bound: str) -> train_lib.Task:
  """The ``train.Task`` of one (sampling, bound) run; evaluates held-out estimates."""
  critic = critics.make_critic(config.critic, **{
      k: tuple(v) if isinstance(v, list) else v
      for k, v in config.critic_kwargs.to_dict().items()})
  estimator = registry.lookup(BOUNDS, bound, 'bound')
  sample_batch = make_sampler(config.latent_cov, config.noise_cov, sampling,
                              config.batch_size)

  def init(key):
    x = jnp.zeros((2, 1), jnp.float32)
    return critic.init(key, x, x)['params'], ()

  def loss(params, aux, batch, key):
    del key
    estimate = estimator(critic.apply({'params': params}, batch['x'], batch['y']))
    return -estimate, ({'mi': estimate}, aux)

  @jax.jit
  def held_out(params):
    def one(key):
      batch = sample_batch(key)
      return estimator(critic.apply({'params': params}, batch['x'], batch['y']))
    keys = jax.random.split(jax.random.PRNGKey(4321), config.eval_batches)
    values = jax.lax.map(one, keys)
    return jnp.mean(values), jnp.std(values)

  def evaluate(params, aux, step):
    del aux, step
    mean, std = held_out(params)
    return {'mi_test': mean, 'mi_test_std': std}

  return train_lib.Task(init=init, sample=lambda data, key: sample_batch(key),
                        loss=loss, evaluate=evaluate)


def plot(workdir: str, runs: list[str], mi: float, filename: str = 'noniid.png') -> str:
  """Fig. 4c: held-out estimate vs step of every run, and the true MI."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for name in runs:
    evals = runs.read_metrics(os.path.join(workdir, name), 'eval')
    sampling, bound = name.split('_', 1)
    ax.plot([r['step'] for r in evals], [r['mi_test'] for r in evals],
            '-' if sampling == 'noniid' else '--',
            label=f"{'$I_{NCE}$' if bound == 'infonce' else '$I_{NWJ}$'}, "
                  f"{'non-i.i.d.' if sampling == 'noniid' else 'i.i.d.'}")
  ax.axhline(mi, color='k', ls=':', label=f'true MI = {mi:.4f}')
  ax.set_xlabel('iteration'); ax.set_ylabel('estimate (nats)'); ax.legend()
  ax.set_title('Non-i.i.d. negatives (Tschannen et al. Fig. 4c)')
  fig.tight_layout()
  path = os.path.join(workdir, filename)
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every (sampling, bound) run, plots, and returns the summary."""
  os.makedirs(workdir, exist_ok=True)
  mi = true_mi(config.latent_cov, config.noise_cov)
  summary = {'true_mi': mi, 'runs': {}}
  names = []
  for sampling in config.samplings:
    for bound in config.bounds:
      name = f'{sampling}_{bound}'
      names.append(name)
      t0 = time.time()
      train_lib.train(config, make_task(config, sampling, bound),
                      os.path.join(workdir, name))
      last = runs.read_metrics(os.path.join(workdir, name), 'eval')[-1]
      summary['runs'][name] = {
          'mi_test': last['mi_test'], 'mi_test_std': last['mi_test_std'],
          'exceeds_true_mi': last['mi_test'] > mi,
          'wall_seconds': time.time() - t0}
      print(f'{name}: held-out estimate {last["mi_test"]:.4f} '
            f'(true MI {mi:.4f}), {time.time() - t0:.0f}s', flush=True)
  path = plot(workdir, names, mi)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  print(f'wrote {path}', flush=True)
  return summary


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  # Flags are defined here, not at import, so that the experiment modules can
  # be imported together (tests, shared helpers).
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/noniid.py', 'Experiment config.',
      lock_config=True)
  flags.DEFINE_string('workdir', 'runs/noniid', 'Output folder.')
  app.run(main)
