"""Calibration of DIM's prior-matching game and of its distance measures.

  python -m experiments.prior_game --config=experiments/configs/prior_game.py \
      --workdir=runs/prior_game
  # CI smoke size:
  ... --config=experiments/configs/prior_game.py:tiny
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('', 'tiny')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Generator of U[0,1]^64 from a 64-d Gaussian, with and without R1."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = ml_collections.ConfigDict()
  config.latent_dim = 64
  config.features = 64                      # d of Y and of the prior
  config.generator_hidden = (256, 256)
  config.discriminator_hidden = (1000, 200)  # DIM's prior discriminator
  config.gradient_penalties = (0.0, 10.0)   # one run per R1 weight
  config.alpha = 0.0
  config.beta = 1e-9                        # MI term off (the game alone)
  config.gamma = 1.0
  config.estimator = 'infonce'
  config.critic_units = 4
  common.training(config, learning_rate=1e-3, batch_size=64, num_steps=4000)
  config.step_loop = 'scan'
  config.eval_examples = 10000   # per side of the C2ST (train and test halves)
  config.energy_examples = 2000
  config.c2st_hidden = 200
  config.c2st_steps = 1500
  config.c2st_batch = 256
  config.c2st_learning_rate = 1e-3
  if variant == 'tiny':
    config.latent_dim = config.features = 4
    config.generator_hidden = (16,)
    config.discriminator_hidden = (16,)
    common.smoke(config, 20, eval_examples=200, energy_examples=100, c2st_steps=20)
  return config
