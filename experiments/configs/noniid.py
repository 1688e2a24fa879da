"""Tschannen et al. (ICLR 2020) Fig. 4c: MI estimates with non-i.i.d. negatives.

1-D Gaussian pairs (x, y). In the non-i.i.d. setting all samples of a batch
share one latent z = (z_x, z_y) ~ N(0, [[1, -.5], [-.5, 1]]) and each pair adds
its own eps ~ N(0, [[1, .9], [.9, 1]]): (x_i, y_i) = z + eps_i. A single pair
is then N(0, Sigma_z + Sigma_eps) = N(0, [[2, .4], [.4, 2]]), correlation
rho = .2, true MI = -1/2 log(1 - rho^2) = 0.0204 nats. The i.i.d. control draws
a fresh z for every pair (same pair distribution). A concat critic (5 hidden
layers of 10) is trained with I_NCE and I_NWJ; the estimates of the
non-i.i.d. batches exceed the true MI, the i.i.d. ones do not.

  python -m experiments.noniid --config=experiments/configs/noniid.py \
      --workdir=runs/noniid
  # CPU-sized variant (5000 steps; ~2-10 min per run on a loaded 2-core CPU):
  python -m experiments.noniid --config=experiments/configs/noniid.py:quick \
      --workdir=runs/noniid_quick
  # CI smoke size:
  ... --config=experiments/configs/noniid.py:tiny

All four runs (sampling in {'noniid', 'iid'} x bound in {'infonce', 'nwj'})
go to subfolders of --workdir; noniid.png draws them together.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('', 'quick', 'tiny')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's settings; ``variant`` 'quick' or 'tiny' shrinks them."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = ml_collections.ConfigDict()
  # Data: per-batch shared latent z plus per-pair noise eps (2x2 covariances).
  config.latent_cov = ((1.0, -0.5), (-0.5, 1.0))
  config.noise_cov = ((1.0, 0.9), (0.9, 1.0))
  config.samplings = ('noniid', 'iid')   # 'noniid': one z per batch; 'iid': per pair
  config.bounds = ('infonce', 'nwj')
  # Critic: concatenated f(x, y) = MLP([x, y]), 5 hidden layers of 10.
  config.critic = 'concat'
  config.critic_kwargs = ml_collections.ConfigDict(dict(hidden=(10,) * 5))
  common.training(config, num_steps=20000, log_every=500, eval_every=1000,
                  checkpoint_every=5000)
  config.eval_batches = 100       # held-out batches (same sampling) per estimate
  if variant == 'quick':
    config.num_steps = 5000
  elif variant == 'tiny':
    common.smoke(config, 20, eval_batches=4)
  return config
