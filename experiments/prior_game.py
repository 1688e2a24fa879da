"""Calibration of DIM's prior-matching game and of its distance measures.

  python -m experiments.prior_game --config=experiments/configs/prior_game.py \
      --workdir=runs/prior_game

The encoder of ``infomax_jax.dim`` is replaced by an MLP of Gaussian noise
(``Generator``), which can match U[0,1]^d exactly, and the MI term is
switched off (β ≈ 0): ``dim.make_update`` then plays the prior-matching game
alone. One run per R1 weight of ``config.gradient_penalties``; every
evaluation reports how far σ(Y) is from the prior by the same measures as
``experiments.dim`` (per-dimension W1, energy distance, classifier
two-sample test). This answers two questions the DIM table raises: does the
game converge without R1 (no: it oscillates away from the prior), and how
strict is the C2ST (with 10000 samples a side it stays near 1 even for a
generator that has nearly matched the prior).

Outputs in --workdir: one folder per run, ``prior_game.json`` (final
measures) and ``prior_game.png`` (the measures against the step).
"""

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from experiments.critics import override
from infomax_jax import runs
from infomax_jax import dim as dim_lib
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import train as train_lib

MEASURES = ('w1_prior', 'energy_prior', 'c2st_accuracy')


class Generator(nn.Module):
  """A stand-in DIM encoder: Y = MLP(z) of Gaussian inputs z.

  Returns the ``{'local', 'y'}`` of an encoder (the local 'map' is z itself,
  unused when β ≈ 0), so ``dim.DeepInfoMax`` and ``dim.make_update`` take it
  unchanged.
  """
  features: int = 64
  hidden: tuple[int, ...] = (256, 256)

  @nn.compact
  def __call__(self, z, train: bool = True):
    y = encoders.MLP(tuple(self.hidden) + (self.features,))(
        z.reshape(z.shape[0], -1))
    return {'local': z.reshape(z.shape[0], 1, 1, -1), 'y': y}


def measures(config, encoded: jax.Array, key: jax.Array) -> dict[str, float]:
  """W1, energy distance and C2ST accuracy of ``encoded`` (2N, d) in [0, 1]
  against fresh prior samples: the C2ST trains on the first half and is
  scored on the second."""
  n = encoded.shape[0] // 2
  prior = dim_lib.prior_sample(key, encoded.shape)
  labels = np.concatenate([np.zeros(n, np.int32), np.ones(n, np.int32)])
  c2st = evaluation.mlp_probe(
      jnp.concatenate([encoded[:n], prior[:n]]), labels,
      jnp.concatenate([encoded[n:], prior[n:]]), labels,
      hidden_size=config.c2st_hidden, steps=config.c2st_steps,
      batch_size=config.c2st_batch, learning_rate=config.c2st_learning_rate)
  m = config.energy_examples
  return {'w1_prior': float(evaluation.wasserstein_to_uniform(encoded[n:])),
          'energy_prior': float(evaluation.energy_distance(encoded[n:n + m],
                                                        prior[n:n + m])),
          'c2st_accuracy': float(c2st['accuracy'])}


def make_task(config) -> train_lib.Task:
  """The ``train.Task`` of one run (R1 weight ``config.gradient_penalty``)."""
  model = dim_lib.DeepInfoMax(
      Generator(config.features, tuple(config.generator_hidden)),
      critic_units=config.critic_units, use_local=True)
  discriminator = dim_lib.PriorDiscriminator(tuple(config.discriminator_hidden))
  latent_shape = (1, config.latent_dim)
  eval_z = jax.random.normal(jax.random.PRNGKey(config.seed + 1),
                             (2 * config.eval_examples,) + latent_shape)

  def init(key):
    return dim_lib.init(model, discriminator, key, latent_shape, config.features)

  def sample(data, key):
    del data
    return {'x': jax.random.normal(key, (config.batch_size,) + latent_shape)}

  def evaluate(params, stats, step):
    del stats, step
    y = model.apply({'params': params['model']}, eval_z, train=False)['y']
    return measures(config, jax.nn.sigmoid(y), jax.random.PRNGKey(config.seed + 2))

  return train_lib.Task(init=init, sample=sample, evaluate=evaluate,
                        update=dim_lib.make_update(model, discriminator, config))


def plot(workdir: str, names: list[str], path: str) -> str:
  """The three measures against the step, one line per run."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(MEASURES), figsize=(5 * len(MEASURES), 3.6))
  for ax, measure in zip(axes, MEASURES):
    for name in names:
      records = runs.read_metrics(os.path.join(workdir, name), 'eval')
      ax.plot([r['step'] for r in records], [r[measure] for r in records],
              marker='o', label=name)
    ax.set_xlabel('step'); ax.set_title(measure); ax.legend()
  axes[2].set_ylim(0.45, 1.02)
  fig.suptitle('Prior-matching game alone: σ(MLP(z)) vs U[0,1]^d')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """One run per R1 weight; writes prior_game.json and prior_game.png."""
  os.makedirs(workdir, exist_ok=True)
  summary, names = {}, []
  for penalty in config.gradient_penalties:
    name = f'r1_{penalty:g}'
    names.append(name)
    run_config = override(config, gradient_penalty=float(penalty))
    t0 = time.time()
    train_lib.train(run_config, make_task(run_config), os.path.join(workdir, name))
    records = runs.read_metrics(os.path.join(workdir, name), 'eval')
    summary[name] = {'initial': {k: records[0][k] for k in MEASURES},
                     'final': {k: records[-1][k] for k in MEASURES},
                     'wall_seconds': round(time.time() - t0, 1)}
    print(f'{name}: {summary[name]}', flush=True)
  with open(os.path.join(workdir, 'prior_game.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  path = plot(workdir, names, os.path.join(workdir, 'prior_game.png'))
  print(f'wrote {path}', flush=True)
  return summary


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/prior_game.py', 'Experiment config.',
      lock_config=True)
  flags.DEFINE_string('workdir', 'runs/prior_game', 'Output folder.')
  app.run(main)
