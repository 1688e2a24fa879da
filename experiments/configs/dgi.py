"""Deep Graph Infomax on Cora and CiteSeer (Velickovic et al. 2019, Table 2).

Full protocol (paper settings, 10 seeds per data set; about 50 CPU-s per run,
39 min in all on a 2-core CPU beside other jobs)::

  INFOMAX_DATA_DIR=../shared/data python -m experiments.dgi \
      --config=experiments/configs/dgi.py --workdir=/tmp/dgi

CPU smoke run (Cora, one seed)::

  INFOMAX_DATA_DIR=../shared/data python -m experiments.dgi \
      --config=experiments/configs/dgi.py:quick --workdir=/tmp/dgi_quick

``:tiny`` runs a few epochs of a narrow model (the CI test). What it should
show: linear-probe test accuracy of the frozen one-layer GCN embeddings near
the paper's 82.3 +- 0.6 % (Cora) and 71.8 +- 0.7 % (CiteSeer).
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('default', 'quick', 'tiny')


def get_config(variant: str = 'default') -> ml_collections.ConfigDict:
  """Returns the DGI config; ``variant`` is one of ``VARIANTS``."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = ml_collections.ConfigDict()
  # Planetoid data sets (infomax_jax.graphs.PLANETOID_NAMES).
  config.datasets = ('cora', 'citeseer')
  # Folder with planetoid/ind.*; None means $INFOMAX_DATA_DIR.
  config.data_dir = None
  config.hidden = 512               # GCN embedding width (paper: 512)
  config.learning_rate = 1e-3       # Adam (paper: 0.001, no weight decay)
  config.patience = 20              # early stopping on the training loss
  config.max_epochs = 10000         # hard limit (the reference code's)
  # Objective by name (infomax_jax.graphs.MASKED_BOUNDS); the paper's BCE is
  # -jsd / 2.
  config.bound = 'jsd'
  # DGI trainings per data set: 10 seeds, so that the mean over seeds has a
  # usable interval (results.md: 'seed ci95').
  config.seeds = tuple(range(10))
  # Evaluation: logistic regression on frozen embeddings of the public split
  # (train 20 per class, test 1000 nodes), repeated from fresh inits.
  config.probe_runs = 50            # paper: 50
  config.probe_epochs = 100         # Adam steps per probe
  config.probe_learning_rate = 0.01
  config.probe_weight_decay = 0.0
  config.log_every = 10             # epochs per jitted chunk / progress line
  config.checkpoint_every = 100     # epochs between checkpoints (resume)

  if variant in ('quick', 'tiny'):     # Cora, one seed
    config.update(datasets=('cora',), seeds=(0,), probe_runs=10)
  if variant == 'tiny':                # 3 epochs of a narrow model (CI)
    config.update(hidden=16, max_epochs=3, log_every=1, probe_runs=2,
                  probe_epochs=5)
  return config
