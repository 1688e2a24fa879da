"""DEMI vs InfoNCE on correlated Gaussians whose MI is far above log K.

CPU default (d = 20, K = 64, true MI 10 and 20 nats, 2 and 4 subviews, 1000
steps; about 20 minutes of CPU time on 2 cores)::

  python -m experiments.demi --config=experiments/configs/demi.py \
      --workdir=/tmp/demi

Smoke run (under two minutes)::

  python -m experiments.demi --config=experiments/configs/demi.py:quick \
      --workdir=/tmp/demi_quick

The issue's full grid (true MI 10, 20, 40 nats x 2, 4 subviews x K = 64, 128,
with the importance-reweighted variant too; meant for a GPU)::

  python -m experiments.demi --config=experiments/configs/demi.py:full \
      --workdir=/tmp/demi_full

CI smoke size (seconds): ``--config=experiments/configs/demi.py:tiny``.

x ~ N(0, I_d), y = rho x + sqrt(1 - rho²) eps (Poole et al. 2019); x is split
into T nested prefix subviews (first d/T, 2d/T, ... coordinates), so every
chain-rule term I(x^(t); y | x^(t-1)) holds MI / T nats. What it should show:
InfoNCE on (x, y) saturates below log K; DEMI, the sum of T terms each capped
at log K, exceeds log K and InfoNCE by several nats and stays below the true
MI; with oracle negatives from p(y | x^(t-1)) each term is a proper lower
bound, the importance-resampled negatives (weights exp ψ from the earlier
critics) are an approximation whose quality is reported by the effective
sample size of the weights.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('default', 'quick', 'full', 'tiny')


def get_config(variant: str = 'default') -> ml_collections.ConfigDict:
  """Returns the DEMI benchmark config; ``variant`` is one of ``VARIANTS``."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  # Adam 5e-4 for 1000 steps in chunks of 50; held-out estimate and checkpoint
  # every 250 steps. batch_size is set per run from batch_sizes.
  config = common.training(learning_rate=5e-4, log_every=50, eval_every=250,
                           checkpoint_every=250)
  config.dim = 20                   # d of x and of y
  config.true_mi = (10.0, 20.0)     # nats; >= 2 log K for K = 64 (8.3)
  config.num_subviews = (2, 4)      # T: number of chain-rule terms of DEMI
  config.batch_sizes = (64,)        # K: the number of candidates per term
  # Methods by name (infomax_jax.demi.METHODS): 'infonce' (one critic on the
  # whole x), 'demi_oracle', 'demi_resample', 'demi_reweight'.
  config.methods = ('infonce', 'demi_oracle', 'demi_resample')
  # Critic of every term: a broadcasting pair critic of infomax_jax.demi
  # ('separable' or 'concat'), Poole et al.'s 2 x 256 hidden, 32-d embedding.
  config.critic = 'separable'
  config.hidden = (256, 256)
  config.embed_dim = 32
  config.eval_batches = 16          # fresh batches averaged per evaluation
  # The "optimal critic" column: each method with the analytic optimal
  # critics (what it reaches at best for this K), averaged over batches.
  config.optimal_batches = 64

  if variant == 'quick':
    config.true_mi = (10.0,)
    config.num_subviews = (2,)
    config.hidden = (64, 64)
    common.schedule(config, 300, 150)
    config.eval_batches = 4
    config.optimal_batches = 8
  elif variant == 'full':
    config.true_mi = (10.0, 20.0, 40.0)
    config.batch_sizes = (64, 128)
    config.methods = ('infonce', 'demi_oracle', 'demi_resample', 'demi_reweight')
    common.schedule(config, 4000, 500, checkpoint_every=1000)
  elif variant == 'tiny':
    config.true_mi = (10.0,)
    config.num_subviews = (2,)
    config.batch_sizes = (16,)
    config.methods = ('infonce', 'demi_oracle', 'demi_resample', 'demi_reweight')
    config.hidden = (16,)
    config.embed_dim = 8
    common.smoke(config, num_steps=20)
    config.eval_batches = 2
    config.optimal_batches = 2
  return config
