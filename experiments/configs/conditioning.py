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
  # CPU-sized Fig. 2 spectra run (600 steps, eval every 150, 64 inputs):
  python -m experiments.conditioning \
      --config=experiments/configs/conditioning.py:quick_short --workdir=runs/cond_short
  # CI smoke size:
  ... --config=experiments/configs/conditioning.py:tiny

Image scale (``:dim``): a DIM encoder (conv 64-128-256, FC 1024, Y 64,
LayerNorm, DIM(L) InfoNCE) on MNIST zero-padded to 32×32 and tiled to 3
channels (3072-d inputs); every evaluation records the exact spectrum of
dY/dx (64 x 3072: 64 VJPs per input), log kappa over the rank (sigma_1 /
sigma_64), the effective rank, the matrix-free log kappa (certified to rtol
1e-2) and a linear probe on Y. CPU-sized (the paper's encoder, ~3.5 steps/s on
2 cores with LayerNorm): 10000 train images, batch 64, 2000 steps, eval
every 250 on 16 fixed inputs (~12 min):

  python -m experiments.conditioning --config=experiments/configs/conditioning.py:dim \
      --workdir=runs/conditioning_dim
  # CI smoke size: ... --config=experiments/configs/conditioning.py:dim_tiny
  # Fashion-MNIST instead: --config.dataset=fashion_mnist
"""

import ml_collections

from experiments.configs import common
from experiments.configs import dim
from experiments.configs import invertible

VARIANTS = ('', 'quick', 'quick_short', 'tiny', 'dim', 'dim_tiny')


def _jacobian_fields(config: ml_collections.ConfigDict, examples: int,
                     chunk: int) -> ml_collections.ConfigDict:
  config.jacobian_examples = examples  # fixed inputs at which J is evaluated
  config.jacobian_chunk = chunk        # Jacobians (or Krylov bases) in memory at once
  config.jacobian_rtol = 1e-2          # matrix-free: relative tolerance on kappa
  config.jacobian_max_iters = 256      # matrix-free: largest Krylov dimension
  return config


def dim_config(variant: str) -> ml_collections.ConfigDict:
  """The DIM encoder on 32×32×3 images (``variant`` 'dim' or 'dim_tiny')."""
  config = dim.get_config('cpu')
  config.setting = 'dim'
  del config['datasets'], config['runs'], config['run_names'], config['skip_unfinished']
  config.dataset = 'mnist'        # padded to 32×32, tiled to 3 channels
  config.encoder_kwargs.norm = 'layer'   # per-example: J of Y is well defined in training mode too
  config.alpha, config.beta, config.gamma = 0.0, 1.0, 0.0   # DIM(L), InfoNCE
  config.estimator = 'infonce'
  config.eval_at_init = True
  config.train_examples = 10000
  config.test_examples = 2000
  config.probe_train_examples = 5000
  config.probe_steps = 100
  common.schedule(config, 2000, 250, log_every=50, checkpoint_every=250)
  _jacobian_fields(config, 16, 16)
  if variant == 'dim_tiny':
    config.critic_units = 64
    config.encoder_kwargs.update(channels=(8, 16, 32), fc_units=64, features=16)
    config.train_examples, config.test_examples = 256, 256
    config.probe_train_examples, config.batch_size = 256, 16
    common.smoke(config, 10, probe_steps=5, jacobian_examples=4, jacobian_chunk=4)
  return config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's settings; 'quick', 'quick_short' or 'tiny' shrink them;
  'dim' / 'dim_tiny' switch to a DIM encoder on 32×32×3 images."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  if variant.startswith('dim'):
    return dim_config(variant)
  config = invertible.get_config()
  config.setting = 'twoview'
  config.encoder = 'residual_mlp'
  config.encoder_kwargs = ml_collections.ConfigDict(dict(
      width=392, num_layers=5, init_std=1e-4))
  _jacobian_fields(config, 128, 32)
  if variant == 'quick':
    common.schedule(config, 3000, 500)
    common.twoview_eval(config, eval_batches=10, probe_steps=100)
  elif variant == 'quick_short':
    common.schedule(config, 600, 150, log_every=50)
    common.twoview_eval(config, eval_batches=5, probe_steps=100)
    config.jacobian_examples = 64
  elif variant == 'tiny':
    config.encoder_kwargs.num_layers = 2
    common.smoke(config, 20, eval_batches=2, probe_steps=5,
                 jacobian_examples=8, jacobian_chunk=4)
  return config
