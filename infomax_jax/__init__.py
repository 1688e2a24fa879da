"""infomax_jax: representation learning by mutual-information maximization in JAX.

Modules:
  bounds         MI estimators on score arrays (DV, MINE, NWJ, TUBA, InfoNCE, JSD,
                 alpha-interpolated, SMILE, f-GAN divergences, conditional InfoNCE, DEMI)
                 and their registry; bounds.streaming: the same on embeddings,
                 streamed over blocks and sharded, for huge batches.
  critics        Flax critics producing K x K score matrices.
  contrastive    the cosine critic with a fixed or learned temperature (SimCLR, CLIP).
  flows          bijective RealNVP encoders.
  encoders       MLP, residual MLP, ConvNet, the DIM conv encoder.
  dim            Deep InfoMax: local/global objectives, encode-and-dot critics,
                 adversarial prior matching.
  data           image data (tfds or local files), views.
  evaluation     fixed evaluation keys, linear / MLP probes, W1 / energy / C2ST.
  runs           the run layer: metrics (jsonl + TensorBoard), timing, tables,
                 plots, config validation, workdir lock and pinned config,
                 checksummed checkpoints, the experiments' entry point.
  train          config-driven training loop with checkpoints and exact resume.
  parallel       device mesh and shardings for data-parallel training.
  twoview        two-view (top/bottom half) MI maximization of Tschannen et al.
  tschannen      the driver of the Tschannen et al. experiments (data, baselines,
                 runs and grids, figures).
  jacobian       exact and matrix-free Jacobian conditioning.
  estimate       ``estimate_mi``: MI from two arrays of samples.
  distributions  samplers with closed-form MI.
  demi           DEMI samplers and critics.
  graphs         Deep Graph Infomax and InfoGraph.
See README.md.
"""

from infomax_jax import bounds
from infomax_jax import cpc
from infomax_jax import critics
from infomax_jax import dim
from infomax_jax import distributions
from infomax_jax import encoders
from infomax_jax import flows
from infomax_jax import jacobian
from infomax_jax.bounds import conditional_infonce
from infomax_jax.bounds import dv
from infomax_jax.bounds import f_divergence
from infomax_jax.bounds import f_divergence_scores
from infomax_jax.bounds import infonce
from infomax_jax.bounds import interpolated
from infomax_jax.bounds import jsd
from infomax_jax.bounds import mine
from infomax_jax.bounds import mine_init
from infomax_jax.bounds import nwj
from infomax_jax.bounds import smile
from infomax_jax.bounds import tuba
from infomax_jax.critics import make_critic
from infomax_jax.encoders import make_encoder
from infomax_jax.estimate import CeilingWarning
from infomax_jax.estimate import EstimationError
from infomax_jax.estimate import MIEstimate
from infomax_jax.estimate import estimate_cmi
from infomax_jax.estimate import estimate_mi
from infomax_jax.flows import RealNVP

__version__ = '0.2.0'
