"""DEMI as a training objective on MNIST halves, against plain InfoNCE.

x = top half (rows 0-13, 392 pixels / 255), y = bottom half; the DEMI subview
x' = the rows of the top half from ``subview_rows[0]`` down (by default rows
7-13, the half of x next to y), then x itself. Both methods train the same MLP
encoders g1, g2 with bilinear critics (one per chain-rule term, on shared
codes); DEMI's conditional term uses in-batch negatives resampled with weights
exp ψ(x', y_j) from the first term's critic. Reported: held-out estimates and
the linear-probe test accuracy of g1(top), beside the pixel baseline.

  python -m experiments.demi_mnist --config=experiments/configs/demi_mnist.py \
      --workdir=/tmp/demi_mnist
  # Smoke size (a minute or two on CPU):
  python -m experiments.demi_mnist --config=experiments/configs/demi_mnist.py:quick \
      --workdir=/tmp/demi_mnist_quick
  # CI smoke size (seconds; 1000 train images):
  ... --config=experiments/configs/demi_mnist.py:tiny

MNIST is read from $INFOMAX_DATA_DIR/mnist.npz (or config.data_dir), else tfds.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('default', 'quick', 'long', 'tiny')


def get_config(variant: str = 'default') -> ml_collections.ConfigDict:
  """Returns the config; ``variant`` is one of ``VARIANTS`` ('long': GPU)."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  # Adam 1e-4, K = 128, 3000 steps; evaluation and checkpoint every 1000.
  config = common.training(num_steps=3000)
  # 20 test batches of K for the MI estimates, 500 L-BFGS steps of the probe.
  common.twoview_eval(config)
  common.twoview_data(config, noise_std=0.0)   # MNIST halves, no input noise
  # Methods (experiments.demi_mnist.METHODS): 'infonce', 'demi_resample',
  # 'demi_reweight'.
  config.methods = ('infonce', 'demi_resample')
  # Nested subviews of the top half: x^(t) = rows subview_rows[t-1]..13; the
  # last subview is the whole top half. (7,): x' = rows 7-13.
  config.subview_rows = (7,)
  config.encoder_features = (300, 300, 100)   # MLP g1 and g2 (ReLU)

  if variant == 'quick':
    config.encoder_features = (64, 32)
    common.schedule(config, 200, 200, log_every=50)
    config.eval_batches = 4
    config.probe_steps = 50
  elif variant == 'long':
    common.schedule(config, 20000, 2000)
  elif variant == 'tiny':
    config.encoder_features = (16, 8)
    config.train_examples = 1000
    config.methods = ('infonce', 'demi_resample', 'demi_reweight')
    common.smoke(config, num_steps=20)
    config.eval_batches = 2
    config.probe_steps = 10
  return config
