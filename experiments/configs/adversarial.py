"""Tschannen et al. (ICLR 2020) Fig. 1c: a bijective encoder that defeats linear probes.

One RealNVP encoder (affine couplings) of MNIST top halves, so the MI between
the code and the input is maximal by construction, trained against a linear
classifier: the classifier (Adam 1e-3) learns the labels from the code, the
encoder (Adam 1e-5) pushes its predictions toward uniform; 1000 classifier
warm-up steps, then 10 classifier steps per encoder step. A fresh linear probe
measures the accuracy at every evaluation. Expected: the probe accuracy falls
below the pixel baseline although I(x; g(x)) never changes.

  python -m experiments.adversarial --config=experiments/configs/adversarial.py \
      --workdir=runs/adversarial
  # CPU-sized variant (4 couplings, conditioner [256], 4000 steps, probe with
  # 100 L-BFGS steps every 500 steps):
  python -m experiments.adversarial \
      --config=experiments/configs/adversarial.py:quick --workdir=runs/adv_quick
  # CI smoke size:
  ... --config=experiments/configs/adversarial.py:tiny
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('', 'quick', 'tiny')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's settings; ``variant`` 'quick' or 'tiny' shrinks them."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = common.twoview_data(ml_collections.ConfigDict())
  # Encoder g: RealNVP with affine (softplus-scale) couplings.
  config.encoder_kwargs = ml_collections.ConfigDict(dict(
      num_couplings=30, hidden=(512, 512), coupling='affine_softplus',
      init_std=1e-4))
  # The game.
  config.encoder_learning_rate = 1e-5
  config.classifier_learning_rate = 1e-3
  config.warmup_steps = 1000      # classifier-only steps at the start
  config.classifier_steps = 10    # classifier steps per encoder step afterwards
  # Optimisation and logging (the two players' rates are above).
  common.training(config, num_steps=21000)
  config.probe_steps = 500        # L-BFGS steps of each fresh linear probe
  if variant == 'quick':
    config.encoder_kwargs.num_couplings = 4
    config.encoder_kwargs.hidden = (256,)
    common.schedule(config, 4000, 500)
    config.probe_steps = 100
  elif variant == 'tiny':
    config.encoder_kwargs.num_couplings = 2
    config.encoder_kwargs.hidden = (16,)
    common.smoke(config, 20, warmup_steps=10, classifier_steps=2, probe_steps=5)
  return config
