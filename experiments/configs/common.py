"""The training block every config shares; ``configs/NAME.py`` overrides it.

Field meanings (read by ``infomax_jax.train``):
  seed              base seed: init, training keys and the fixed evaluation
                    batches (``infomax_jax.evaluation.eval_key``) derive from it.
  num_seeds         replicas trained side by side (vmapped): seeds seed, seed+1, ...
  replica_devices   device groups the replicas are sharded over (1: every device
                    holds every replica); divides num_seeds and the device count.
  optimizer         'adam' or 'sgd'.
  learning_rate     step size.
  batch_size        global batch (sharded over the devices).
  num_steps         optimisation steps.
  log_every         steps per jitted chunk and per progress line / train record.
  eval_every        steps between evaluations (a multiple of log_every).
  checkpoint_every  steps between checkpoints (a multiple of log_every).
"""

from typing import Any, Sequence

import ml_collections
from ml_collections import config_dict


def training(config: ml_collections.ConfigDict | None = None,
             **overrides: Any) -> ml_collections.ConfigDict:
  """Adds the shared training fields to ``config`` (new if None), then ``overrides``."""
  config = ml_collections.ConfigDict() if config is None else config
  config.seed = 0
  config.num_seeds = 1   # > 1: seeds seed .. seed + num_seeds - 1, vmapped in one program
  config.replica_devices = 1   # > 1: replicas sharded over this many device groups
  config.optimizer = 'adam'
  config.learning_rate = 1e-4
  config.batch_size = 128
  config.num_steps = 1000
  config.log_every = 100
  config.eval_every = 1000
  config.checkpoint_every = 1000
  config.update(overrides)
  return config


def twoview_eval(config: ml_collections.ConfigDict, *, eval_batches: int = 20,
                 probe_steps: int = 500, probe_warm_steps: int = 150
                 ) -> ml_collections.ConfigDict:
  """The evaluation fields of the two-view (Tschannen et al.) experiments."""
  config.eval_batches = eval_batches   # batches of batch_size for the MI estimates
  config.probe_steps = probe_steps     # L-BFGS iterations of the linear probe
  # Later probes of a run start from the previous fit: this many iterations
  # (0: every fit cold, probe_steps from zero).
  config.probe_warm_steps = probe_warm_steps
  return config


def smoke(config: ml_collections.ConfigDict, num_steps: int = 20,
          **overrides: Any) -> ml_collections.ConfigDict:
  """CI-sized schedule: ``num_steps`` steps in chunks of 10, evaluated and
  checkpointed at the end (and every ``num_steps`` after)."""
  config.num_steps = num_steps
  config.log_every = min(10, num_steps) or 1
  config.eval_every = num_steps or 1
  config.checkpoint_every = num_steps or 1
  config.update(overrides)
  return config


def unknown_variant(variant: str, valid: Sequence[str]) -> ValueError:
  """The error of an unknown config variant, listing the valid ones."""
  shown = ', '.join(repr(v) for v in valid)
  return ValueError(f'unknown config variant {variant!r}; valid variants are: {shown}')


def schedule(config: ml_collections.ConfigDict, num_steps: int, every: int, *,
             log_every: int | None = None,
             checkpoint_every: int | None = None) -> ml_collections.ConfigDict:
  """``num_steps`` steps, evaluated every ``every`` (and checkpointed there too,
  unless ``checkpoint_every`` says otherwise)."""
  config.num_steps = num_steps
  config.eval_every = every
  config.checkpoint_every = checkpoint_every or every
  if log_every is not None:
    config.log_every = log_every
  return config


def image_data(config: ml_collections.ConfigDict,
               datasets=('mnist', 'fashion_mnist')) -> ml_collections.ConfigDict:
  """The data fields of the image experiments that loop over data sets (DIM, CPC)."""
  config.datasets = tuple(datasets)
  config.dataset = datasets[0]    # set per run from config.datasets
  config.data_dir = ''            # '' -> $INFOMAX_DATA_DIR, system dirs, tfds
  config.data_source = 'auto'     # 'auto', 'local' or 'tfds' (data.load)
  config.train_examples = 0       # > 0: only the first N train images
  config.test_examples = 0        # > 0: only the first N test images
  return config


def twoview_data(config: ml_collections.ConfigDict,
                 noise_std: float = 0.05) -> ml_collections.ConfigDict:
  """The data fields of the two-view (top/bottom MNIST halves) experiments."""
  config.dataset = 'mnist'
  config.data_dir = ''            # '' -> $INFOMAX_DATA_DIR, then tfds
  config.train_examples = 0       # > 0: use only the first N train images
  config.noise_std = noise_std    # Gaussian noise on the views while training
  # > 0: encode in chunks of this many rows with gradient caching (same
  # gradients, encoder memory O(embed_chunk)); None: the whole batch at once.
  config.embed_chunk = config_dict.placeholder(int)
  return config
