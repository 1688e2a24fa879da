"""Large-batch InfoNCE on the Gaussian benchmark at high MI (SPEC experiment 10).

x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps with I(X; Y) = 10 and 20 nats,
InfoNCE vs batch size K: the estimate is capped at log K, so only batches far
beyond what a K x K score matrix allows get near the truth. Above
``streaming_threshold`` the loss is the streaming InfoNCE (column blocks,
custom VJP) sharded over every device with negatives from the global batch.

Full run (GPU: K up to 65536 in training)::

  python -m experiments.large_batch --config=experiments/configs/large_batch.py \
      --workdir=runs/large_batch

CPU run (critics trained up to K = 4096, evaluated up to 65536; ~1 h on 2
busy cores)::

  python -m experiments.large_batch \
      --config=experiments/configs/large_batch.py:cpu --workdir=runs/large_batch_cpu

Smoke run (a few minutes on CPU)::

  python -m experiments.large_batch \
      --config=experiments/configs/large_batch.py:quick --workdir=/tmp/large_batch_quick

CI smoke size (seconds): ``--config=experiments/configs/large_batch.py:tiny``.

What it should show (large_batch.png, summary.md): every curve stays below
both the true MI and the log K line and rises with K. At 20 nats the estimates
sit on the log K line (11.04 of 11.09 at K = 65536 on CPU): the bound, not the
critic, is the limit, and only a larger batch lifts it. At 10 nats the curves
bend away from log K as it nears the truth (9.1 for the optimal critic at
K = 65536): with the optimal critic the gap is about
E[log(1 + (K - 1) p(y) / p(y|x))], which falls only slowly with K because the
log density ratio spreads widely around its mean I.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('default', 'cpu', 'quick', 'tiny')


def get_config(variant: str = 'default') -> ml_collections.ConfigDict:
  """Returns the config; ``variant`` is one of ``VARIANTS``."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  # Training (infomax_jax.train): Adam 1e-3, the same number of steps at every
  # K (batch_size is set per run from batch_sizes).
  config = common.training(learning_rate=1e-3, num_steps=2000)
  # Data: true MI levels in nats and the dimension of x and y.
  config.mi_levels = (10.0, 20.0)
  config.dim = 20
  # Batch sizes K (each a multiple of the device count). Critics are trained
  # at every K <= max_train_batch; every critic curve is evaluated at all K.
  config.batch_sizes = (64, 256, 1024, 4096, 16384, 65536)
  config.max_train_batch = 65536
  # Separable critic <phi_x(x), phi_y(y)> (infomax_jax.critics.Separable).
  config.hidden = (256, 256)
  config.embed_dim = 32
  # Loss: dense K x K scores up to the threshold, then bounds.streaming.infonce
  # streamed over column blocks and sharded with this collective.
  config.streaming_threshold = 4096
  config.block_size = 2048
  config.collective = 'ring'          # 'ring' or 'all_gather'
  # Evaluation: about eval_pairs pairs in batches of K, at least
  # min_eval_batches and at most max_eval_batches batches.
  config.eval_matmul_precision = 'highest'   # no TF32 in the evaluation scores
  config.eval_pairs = 2**20
  config.min_eval_batches = 2
  config.max_eval_batches = 64

  if variant == 'cpu':
    config.max_train_batch = 4096
    config.streaming_threshold = 2048
    config.block_size = 1024
    common.schedule(config, 1000, 500)
    config.eval_pairs = 2**17
    config.min_eval_batches = 1
  elif variant in ('quick', 'tiny'):
    config.mi_levels = (10.0,)
    config.batch_sizes = (64, 256, 1024, 4096)
    config.max_train_batch = 1024
    config.hidden = (64,)
    config.embed_dim = 16
    config.streaming_threshold = 256    # exercise the streaming path
    config.block_size = 128
    common.schedule(config, 200, 100, log_every=50, checkpoint_every=200)
    config.eval_pairs = 2**14
    config.min_eval_batches = 1
    config.max_eval_batches = 8
  if variant == 'tiny':
    config.batch_sizes = (16, 64, 256)
    config.max_train_batch = 64
    config.hidden = (8,)
    config.embed_dim = 4
    config.streaming_threshold = 16
    config.block_size = 8
    common.smoke(config, num_steps=20)
    config.eval_pairs = 512
    config.max_eval_batches = 2
  return config
