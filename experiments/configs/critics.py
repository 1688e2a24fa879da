"""Tschannen et al. (ICLR 2020) Fig. 3: the critic shapes what is learned.

MLP encoders [300, 300, 100] for the top and bottom halves of MNIST; critics
bilinear (f = g1^T W g2), separable (two MLPs, hidden 100, embedding 100) and
concatenated (an MLP on [g1, g2], hidden 200, output 1); trained with I_NCE and
I_NWJ. Every evaluation: linear-probe accuracy of g1(top) and the test I_NWJ.
Finding: the looser bilinear/separable critics give *lower* I_NWJ but *higher*
probe accuracy than the concat critic.

  python -m experiments.critics --config=experiments/configs/critics.py \
      --workdir=runs/critics
  # CPU-sized variant (4000 steps; first 10000 train images for training and
  # the probe; 100 L-BFGS probe iterations):
  python -m experiments.critics --config=experiments/configs/critics.py:quick \
      --workdir=runs/critics_quick
  # CI smoke size:
  ... --config=experiments/configs/critics.py:tiny

Each (bound, critic) trains in --workdir/<bound>_<critic> (a rerun resumes);
critics.png and summary.json in --workdir collect all of them.
"""

import ml_collections
from ml_collections import config_dict

from experiments.configs import common

VARIANTS = ('', 'quick', 'tiny')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's settings; ``variant`` 'quick' or 'tiny' shrinks them."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = common.twoview_data(ml_collections.ConfigDict())
  config.encoder = 'mlp'
  config.encoder_kwargs = ml_collections.ConfigDict(dict(features=(300, 300, 100)))
  # Critic name -> its kwargs (infomax_jax.critics.make_critic); run in this order.
  config.critics = ml_collections.ConfigDict(dict(
      bilinear={},
      separable=dict(hidden=(100,), embed_dim=100),
      concat=dict(hidden=(200,)),
  ))
  config.bounds = ('infonce', 'nwj')   # each critic is trained with each bound
  config.reference_critic = 'concat'   # findings.md: each critic minus this one, paired by seed
  config.target_mi = config_dict.placeholder(float)  # unused here: maximise
  common.training(config, num_steps=20000, eval_every=2000, checkpoint_every=2000)
  common.twoview_eval(config, eval_batches=20, probe_steps=500)
  if variant == 'quick':
    config.train_examples = 10000
    common.schedule(config, 4000, 1000)
    common.twoview_eval(config, eval_batches=10, probe_steps=100)
  elif variant == 'tiny':
    config.encoder_kwargs.features = (32, 16)
    config.critics.separable.hidden = (16,)
    config.critics.separable.embed_dim = 8
    config.critics.concat.hidden = (16,)
    common.smoke(config, 10, eval_batches=2, probe_steps=20)
  return config
