"""Gaussian MI benchmark of Poole et al. (2019, Fig. 2), all estimators.

Full protocol (on 2 idle CPU cores about 20-80 s per estimator with the
separable critic and 4 min with the concat critic; both critics and all 12
estimators take 90 s on one H100)::

  python -m experiments.bounds --config=experiments/configs/bounds.py \
      --workdir=/tmp/bounds

CPU smoke run (separable critic, five estimators, 200 steps per level; 16 s on
2 idle CPU cores)::

  python -m experiments.bounds --config=experiments/configs/bounds.py:quick \
      --workdir=/tmp/bounds_quick

Several seeds per pair, trained side by side in one program (vmapped), for
means over seeds with 95 % Student-t intervals and bands: add
``--config.num_seeds=3`` (the quick run: 105 s wall with 3 seeds on the 2
CPU cores under a load of ~4.7, 11-21 s of training per estimator;
results/bounds_quick_3seeds).

x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps with rho set so that the true MI
steps through ``levels`` nats. What it should show: InfoNCE saturating at
log(batch_size) = log 64 ~ 4.16 nats; NWJ/TUBA close to the truth at low MI
with a variance that explodes at high MI; DV overshooting at high MI (without
limit with the concat critic) and SMILE(tau=5) above the truth from 6 nats;
the alpha-interpolated bounds trading bias (ceiling 1 + log K - log alpha)
for variance.
"""

import ml_collections

from experiments.configs import common

# The benchmark's estimators: label -> (name in infomax_jax.bounds.REGISTRY,
# hyperparameters). Each trains on the bound's objective and plots the MI
# estimate the registry reports (jsd: nwj(scores + 1); mine: DV).
ESTIMATORS = {
    'infonce': ('infonce', {}),
    'nwj': ('nwj', {}),
    'dv': ('dv', {}),
    'jsd': ('jsd', {}),
    'tuba': ('tuba', {}),
    'interpolated_0.01': ('interpolated', {'alpha': 0.01}),
    'interpolated_0.5': ('interpolated', {'alpha': 0.5}),
    'interpolated_0.99': ('interpolated', {'alpha': 0.99}),
    'smile_1': ('smile', {'clip': 1.0}),
    'smile_5': ('smile', {'clip': 5.0}),
    'smile_inf': ('smile', {'clip': None}),
    'mine': ('mine', {'momentum': 0.99}),     # MINE's EMA of E_M[e^f]
}
ALL_ESTIMATORS = tuple(ESTIMATORS)             # in plotting order


def get_config(variant: str = 'default') -> ml_collections.ConfigDict:
  """Returns the benchmark config; ``variant`` is 'default' or 'quick'."""
  config = ml_collections.ConfigDict()
  # Critics by name (infomax_jax.critics.CRITICS): 'separable' or 'concat'.
  config.critics = ('separable', 'concat')
  # Estimators by label (ESTIMATORS above); unknown labels raise.
  config.estimators = ALL_ESTIMATORS
  # True MI staircase in nats; one level after the other, same critic.
  config.levels = (2.0, 4.0, 6.0, 8.0, 10.0)
  config.steps_per_level = 4000
  config.batch_size = 64            # K: InfoNCE's ceiling is log K
  config.dim = 20                   # d of x and of y
  config.hidden = (256, 256)        # critic MLP hidden widths (ReLU)
  config.embed_dim = 32             # separable critic's embedding width
  # Learned log-baseline a(y) of TUBA and the interpolated bounds: an MLP on y
  # (Poole et al.'s 'unnormalized' baseline: 2 hidden layers of 512).
  config.baseline_hidden = (512, 512)
  config.learning_rate = 5e-4       # Adam
  config.seed = 0                   # same data stream for every combination
  # Replicas per pair, trained side by side in one program (vmapped): seeds
  # seed .. seed + num_seeds - 1. With > 1 the summary gives each level's
  # mean over seeds with a 95 % Student-t interval and the figure a band.
  config.num_seeds = 1
  # Summary statistics over the last `summary_window` steps of each level;
  # the standard error comes from `summary_batches` batch means (autocorrelated
  # steps, see experiments.bounds.summarize).
  config.summary_window = 1000
  config.summary_batches = 10
  config.ema = 0.99                 # EMA smoothing of the plotted estimates

  if variant == 'quick':
    config.critics = ('separable',)
    config.estimators = ('infonce', 'nwj', 'dv', 'jsd', 'tuba')
    config.steps_per_level = 200
    config.summary_window = 100
  elif variant != 'default':
    raise common.unknown_variant(variant, ('default', 'quick'))
  return config
