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

import flax.linen as nn
import jax
import ml_collections

from infomax_jax import dim as dim_lib
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import runs
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


def make_task(config) -> train_lib.Task:
  """The ``train.Task`` of one run (R1 weight ``config.gradient_penalty``).

  Every evaluation encodes 2 x ``eval_examples`` fixed latents: the C2ST is
  fitted on the first half and scored on the second (against fresh prior
  samples), W1 and the energy distance use the second.
  """
  model = dim_lib.DeepInfoMax(
      Generator(config.features, tuple(config.generator_hidden)),
      critic_units=config.critic_units, use_local=True)
  discriminator = dim_lib.PriorDiscriminator(tuple(config.discriminator_hidden))
  latent_shape = (1, config.latent_dim)
  n = config.eval_examples
  eval_z = jax.random.normal(evaluation.eval_key(config.seed, 'latents'),
                             (2 * n,) + latent_shape)

  def init(key):
    return dim_lib.init(model, discriminator, key, latent_shape, config.features)

  def sample(data, key):
    del data
    return {'x': jax.random.normal(key, (config.batch_size,) + latent_shape)}

  def evaluate(params, stats, step):
    del stats, step
    y = jax.nn.sigmoid(model.apply({'params': params['model']}, eval_z,
                                   train=False)['y'])
    return evaluation.distances_to_uniform(
        y[:n], y[n:], seed=config.seed, energy_examples=config.energy_examples,
        hidden_size=config.c2st_hidden, steps=config.c2st_steps,
        batch_size=config.c2st_batch, learning_rate=config.c2st_learning_rate)

  return train_lib.Task(init=init, sample=sample, evaluate=evaluate,
                        update=dim_lib.make_update(model, discriminator, config))


def plot(workdir: str, names: list[str], path: str) -> str:
  """The three measures against the step, one line per run."""
  fig, axes = runs.plots.panels(len(MEASURES))
  for ax, measure in zip(axes, MEASURES):
    for name in names:
      records = runs.read_metrics(os.path.join(workdir, name), 'eval')
      ax.plot(*runs.series(records, measure), marker='o', label=name)
    ax.set_title(measure)
    runs.plots.labels(ax, 'step', measure, legend=True)
  axes[2].set_ylim(0.45, 1.02)
  return runs.plots.save(fig, path, 'Prior-matching game alone: σ(MLP(z)) vs U[0,1]^d')


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """One run per R1 weight; writes prior_game.json and prior_game.png."""
  summary, names = {}, []
  for penalty in config.gradient_penalties:
    name = f'r1_{penalty:g}'
    names.append(name)
    run_config = runs.override(config, gradient_penalty=float(penalty))
    run_dir = os.path.join(workdir, name)
    train_lib.train(run_config, make_task(run_config), run_dir)
    records = runs.read_metrics(run_dir, 'eval')
    seconds = runs.seconds(run_dir)
    summary[name] = {'initial': {k: records[0][k] for k in MEASURES},
                     'final': {k: records[-1][k] for k in MEASURES},
                     'wall_seconds': round(seconds, 1)}
    print(f'{name}: {summary[name]}', flush=True)
  runs.write_text(os.path.join(workdir, 'prior_game.json'), json.dumps(summary, indent=1))
  path = plot(workdir, names, os.path.join(workdir, 'prior_game.png'))
  print(f'wrote {path}', flush=True)
  return summary


if __name__ == '__main__':
  runs.main(run, __file__)
