"""Tschannen et al. (ICLR 2020) Fig. 2: Jacobian conditioning of non-invertible encoders.

g1 (top half) and g2 (bottom half) of MNIST are 5-block residual MLPs of width
392, B(x) = x + relu(W x + b), identity at init (W ~ N(0, 1e-4^2)), so they
start invertible but training may make them ill-conditioned or non-invertible.
Bilinear critic, I_NCE (or I_NWJ), input noise std 0.05. Every evaluation
records the probe accuracy, the MI estimates and the percentiles (0, 20, ...,
100) of log kappa(dg1/dx) over 128 fixed training top halves (exact Jacobians
by jax.jacfwd). Expected (Fig. 2): the log-condition-number percentiles grow
while the accuracy rises.

  python -m experiments.conditioning --config=experiments/configs/conditioning.py \
      --workdir=runs/conditioning_nce
  python -m experiments.conditioning --config=experiments/configs/conditioning.py \
      --config.bound=nwj --workdir=runs/conditioning_nwj
  # CPU-sized variant (3000 steps, eval every 500, 100 L-BFGS probe steps):
  python -m experiments.conditioning \
      --config=experiments/configs/conditioning.py:quick --workdir=runs/cond_quick
  # CI smoke size:
  ... --config=experiments/configs/conditioning.py:tiny
"""

import ml_collections

from experiments.configs import common
from experiments.configs import invertible

VARIANTS = ('', 'quick', 'tiny')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's settings; ``variant`` 'quick' or 'tiny' shrinks them."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = invertible.get_config()
  config.encoder = 'residual_mlp'
  config.encoder_kwargs = ml_collections.ConfigDict(dict(
      width=392, num_layers=5, init_std=1e-4))
  config.jacobian_examples = 128  # fixed train top halves for log kappa(dg1/dx)
  config.jacobian_chunk = 32      # Jacobians held in memory at once
  if variant == 'quick':
    common.schedule(config, 3000, 500)
    common.twoview_eval(config, eval_batches=10, probe_steps=100)
  elif variant == 'tiny':
    config.encoder_kwargs.num_layers = 2
    common.smoke(config, 20, eval_batches=2, probe_steps=5,
                 jacobian_examples=8, jacobian_chunk=4)
  return config
