"""Tschannen et al. (ICLR 2020) Fig. 1a/b: MI maximization with bijective encoders.

Two RealNVP encoders g1 (top half) and g2 (bottom half) of MNIST, a bilinear
critic, I_NCE or I_NWJ. The encoders are invertible, so the true MI between
the codes never changes, yet the linear-probe accuracy of g1(top) rises above
the pixel baseline.

  python -m experiments.invertible --config=experiments/configs/invertible.py \
      --workdir=runs/invertible_nce
  # I_NWJ instead of I_NCE:
  python -m experiments.invertible --config=experiments/configs/invertible.py \
      --config.bound=nwj --workdir=runs/invertible_nwj
  # CPU-sized variant (8 couplings, 6000 steps; 8–10 min on 2 cores, README):
  python -m experiments.invertible --config=experiments/configs/invertible.py:quick \
      --workdir=runs/invertible_quick
  # CI smoke size:
  ... --config=experiments/configs/invertible.py:tiny

MNIST is read from $INFOMAX_DATA_DIR/mnist.npz (or config.data_dir), else tfds.
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
  # Encoders: g1, g2 = RealNVP with 30 additive couplings, conditioner [512, 512].
  config.encoder = 'realnvp'
  config.encoder_kwargs = ml_collections.ConfigDict(dict(
      num_couplings=30, hidden=(512, 512), coupling='additive', init_std=1e-4))
  config.critic = 'bilinear'
  config.critic_kwargs = ml_collections.ConfigDict()
  config.bound = 'infonce'        # 'infonce' or 'nwj' (also 'dv', 'jsd')
  config.target_mi = config_dict.placeholder(float)  # t: minimise |I_EST - t|
  common.training(config, num_steps=21000)   # Adam 1e-4, batch 128
  common.twoview_eval(config, eval_batches=20, probe_steps=500)
  if variant == 'quick':
    config.encoder_kwargs.num_couplings = 8
    config.num_steps = 6000
  elif variant == 'tiny':
    config.encoder_kwargs.num_couplings = 2
    config.encoder_kwargs.hidden = (32,)
    common.smoke(config, 20, eval_batches=2, probe_steps=50)
  return config
