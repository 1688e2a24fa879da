"""Two-view MNIST at batch sizes up to the whole training set (issue #18, item 5).

Tschannen et al.'s Fig. 3 model (MLP encoders [300, 300, 100] on the top and
bottom halves, bilinear critic) trained with InfoNCE at batch K in
``batch_sizes``, the largest K being the whole training set in one batch
(K = 60000). Every step runs through gradient caching (``embed_chunk`` rows
of the encoders at a time, ``infomax_jax.gradcache``) and the streaming loss
(``block_size`` columns at a time): memory stays flat in K. The same number
of steps at every K. For each K: I_NCE at K (train), log K, I_NCE on a test
batch, the linear-probe accuracy of g1(top) — does a tighter bound (larger
K, I_NCE closer to the truth) give a better representation?

Full run (GPU; K up to 60000)::

  python -m experiments.large_batch_mnist \
      --config=experiments/configs/large_batch_mnist.py --workdir=runs/large_batch_mnist

CPU-sized run (the first 8192 training images; K = 128, 1024, 8192 = the
whole subset; 200 steps; a few minutes on 2 cores)::

  python -m experiments.large_batch_mnist \
      --config=experiments/configs/large_batch_mnist.py:cpu \
      --workdir=runs/large_batch_mnist_cpu

CI smoke size: ``--config=experiments/configs/large_batch_mnist.py:tiny``.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('default', 'cpu', 'tiny')


def get_config(variant: str = 'default') -> ml_collections.ConfigDict:
  """Returns the config; ``variant`` is one of ``VARIANTS``."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = common.twoview_data(ml_collections.ConfigDict())
  common.training(config, learning_rate=1e-3, num_steps=2000, eval_every=1000,
                  checkpoint_every=1000)
  # Encoders g1, g2 (Fig. 3) and the bilinear critic f = g1(x)^T W g2(y).
  config.encoder = 'mlp'
  config.encoder_kwargs = ml_collections.ConfigDict(dict(features=(300, 300, 100)))
  config.critic = 'bilinear'
  config.bound = 'infonce'
  # Batch sizes K (the last: the whole training set); batch_size is set per run.
  config.batch_sizes = (128, 1024, 8192, 60000)
  # GradCache: encoder rows per chunk (0: plain autodiff); loss: streaming
  # InfoNCE over column blocks of block_size (dense when K <= block_size),
  # its matmuls in matmul_dtype ('float32', 'bfloat16', 'float16').
  config.embed_chunk = 8192
  config.block_size = 4096
  config.matmul_dtype = 'float32'
  # Evaluation: I_NCE on one test batch of min(K, test_batch) pairs; a linear
  # probe on g1 of the clean top halves.
  config.test_batch = 10000
  common.twoview_eval(config, eval_batches=1, probe_steps=500)

  if variant == 'cpu':
    config.train_examples = 8192
    config.batch_sizes = (128, 1024, 8192)
    config.embed_chunk = 2048
    config.block_size = 2048
    common.schedule(config, 200, 200, log_every=50)
    config.test_batch = 8192
    config.probe_steps = 100
  elif variant == 'tiny':
    config.train_examples = 256
    config.batch_sizes = (16, 256)
    config.encoder_kwargs.features = (16, 8)
    config.embed_chunk = 64
    config.block_size = 32
    common.smoke(config, num_steps=10)
    config.test_batch = 128
    config.probe_steps = 10
  return config
