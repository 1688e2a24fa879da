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

MNIST is read from $INFOMAX_DATA_DIR/mnist.npz (or config.data_dir), else tfds.
"""

import ml_collections


def get_config(variant: str = 'default') -> ml_collections.ConfigDict:
  """Returns the config; ``variant`` is 'default', 'quick' or 'long' (GPU)."""
  config = ml_collections.ConfigDict()
  config.dataset = 'mnist'
  config.data_dir = ''              # '' -> $INFOMAX_DATA_DIR, then tfds
  config.noise_std = 0.0            # Gaussian noise on both views while training
  # Methods (experiments.demi_mnist.METHODS): 'infonce', 'demi_resample',
  # 'demi_reweight'.
  config.methods = ('infonce', 'demi_resample')
  # Nested subviews of the top half: x^(t) = rows subview_rows[t-1]..13; the
  # last subview is the whole top half. (7,): x' = rows 7-13.
  config.subview_rows = (7,)
  config.encoder_features = (300, 300, 100)   # MLP g1 and g2 (ReLU)
  config.seed = 0
  config.learning_rate = 1e-4       # Adam
  config.batch_size = 128           # K
  config.num_steps = 3000
  config.log_every = 100
  config.eval_every = 1000
  config.checkpoint_every = 1000
  config.eval_batches = 20          # test batches of K for the MI estimates
  config.probe_steps = 500          # L-BFGS steps of the linear probe

  if variant == 'quick':
    config.encoder_features = (64, 32)
    config.num_steps = 200
    config.log_every = 50
    config.eval_every = 200
    config.checkpoint_every = 200
    config.eval_batches = 4
    config.probe_steps = 50
  elif variant == 'long':
    config.num_steps = 20000
    config.eval_every = 2000
    config.checkpoint_every = 2000
  elif variant != 'default':
    raise ValueError(f'unknown config variant {variant!r}; valid variants are: '
                     'default, quick, long')
  return config
