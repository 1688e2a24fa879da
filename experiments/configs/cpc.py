"""Contrastive Predictive Coding (van den Oord et al. 2018), image setup at MNIST size.

28×28 images, zero-padded to 32×32, as a 7×7 grid of overlapping 8×8 patches
(stride 4); a patch encoder; a masked-conv (PixelCNN-style) or GRU context
network down the rows; bilinear predictions W_k c_t of the latents k = 1..K
rows below, scored by InfoNCE against every other patch of the batch (same
and other images). Runs (``config.runs``): 'control' (the encoder at its
random initialisation, ``num_steps = 0``), 'cpc' (patches, masked conv),
'cpc_gru' (patches, GRU over rows) and 'rows_gru' (the sequence form: the 28
pixel rows of an image as 28 time steps, GRU context). Evaluation: the
shared linear probe (L-BFGS) on flattened latents (z_grid), mean-pooled
latents (z_pool) and mean-pooled contexts (c_pool), and the test InfoNCE of
each offset beside its ceiling log N.

  # CPU variant (MNIST and Fashion-MNIST offline; DIM(L) :cpu's data and
  # budget: 20000 train images, batch 64, 600 steps, probes on 10000 train
  # images, full test set):
  python -m experiments.cpc --config=experiments/configs/cpc.py:cpu \
      --workdir=results/cpc_cpu
  # DIM(L) :cpu_long's budget, 2000 steps (copy the :cpu run folders of
  # control and cpc into the workdir to resume from 600):
  python -m experiments.cpc --config=experiments/configs/cpc.py:cpu_long \
      --workdir=results/cpc_cpu_long
  # Full size (GPU): 60000 images, 20000 steps, conv patch encoder:
  python -m experiments.cpc --config=experiments/configs/cpc.py --workdir=runs/cpc
  # CI smoke size:
  ... --config=experiments/configs/cpc.py:tiny

``config.dim_table`` names a ``dim_table.csv`` of ``experiments/dim.py``; its
DIM(L) InfoNCE rows (same data and budget) are copied into the comparison
table ``cpc_vs_dim.md``.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('', 'cpu', 'cpu_long', 'tiny')


def _run(**fields) -> dict:
  return dict(fields)


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Full-size settings; ``variant`` 'cpu' or 'tiny' shrinks them."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = ml_collections.ConfigDict()
  common.image_data(config)
  # Model (cpc.make_model).
  config.form = 'patches'         # 'patches' (7×7 grid) or 'rows' (sequence of rows)
  config.patch_size = 8
  config.stride = 4
  config.pad = 2                  # 28 + 2·2 = 32 -> (32 - 8) / 4 + 1 = 7 patches a side
  config.cpc_encoder = 'patch_conv'  # 'patch_conv', 'patch_mlp' (patches), 'step_mlp' (rows)
  config.encoder_kwargs = ml_collections.ConfigDict(dict(channels=(32, 64)))
  config.latent_dim = 64          # z
  config.context = 'masked_conv'  # 'masked_conv' or 'gru'
  config.context_features = 128   # c
  config.context_kwargs = ml_collections.ConfigDict()
  config.prediction_steps = 3     # K: predict k = first_offset .. first_offset + K - 1
  config.first_offset = 1
  # Objective: a scores-only entry of infomax_jax.bounds on the (N, N) scores.
  config.bound = 'infonce'
  config.negatives = 'dense'      # 'dense' or 'sharded' (streaming InfoNCE, shard_map)
  config.collective = 'all_gather'  # 'sharded' only: 'all_gather' or 'ring'
  config.block_size = 0           # 'sharded' only: > 0 streams column blocks
  config.runs = ml_collections.ConfigDict({
      'control': _run(num_steps=0),
      'cpc': _run(),
      'cpc_gru': _run(context='gru'),
      'rows_gru': _run(form='rows', cpc_encoder='step_mlp', context='gru',
                       encoder_kwargs=dict(hidden=(128,))),
  })
  config.run_names = ()           # () = every run, control first
  config.skip_unfinished = False  # True: tabulate finished runs, train nothing
  config.dim_table = ''           # a dim_table.csv to compare with ('' = none)
  # The paper: Adam 2e-4 (batch 32 of 256×256 images per GPU).
  common.training(config, learning_rate=2e-4, batch_size=64, num_steps=20000,
                  eval_every=20000, checkpoint_every=2000)
  config.step_loop = 'python'     # XLA:CPU convs are slow inside a scan
  config.eval_at_init = False     # the 'control' run reports the init
  config.eval_batches = 20        # fixed test batches for the test InfoNCE
  config.probe_train_examples = 0  # 0: every train image
  config.probe_steps = 300         # L-BFGS iterations of the linear probe
  if variant in ('cpu', 'cpu_long'):
    # DIM(L) :cpu's data and budget (experiments/configs/dim.py:cpu):
    # 20000 train images, batch 64, 600 steps, probes on 10000 train images.
    config.train_examples = 20000
    config.probe_train_examples = 10000
    config.cpc_encoder = 'patch_mlp'  # 3136 patches a batch: an MLP keeps CPU steps cheap
    config.encoder_kwargs = ml_collections.ConfigDict(dict(hidden=(256,)))
    config.context_features = 64
    config.run_names = ('control', 'cpc', 'rows_gru')
    config.dim_table = 'results/dim_cpu/dim_table.csv'
    common.schedule(config, 600, 600, log_every=50, checkpoint_every=200)
    config.eval_batches = 10
    config.probe_steps = 200
    if variant == 'cpu_long':
      # DIM(L) :cpu_long's budget: 2000 steps. Resumes the 600-step runs of
      # :cpu when their folders are copied into the workdir (resume is exact).
      config.datasets = ('fashion_mnist', 'mnist')
      config.run_names = ('control', 'cpc')
      config.dim_table = 'results/dim_cpu_long/dim_table.csv'
      common.schedule(config, 2000, 2000, checkpoint_every=200)
  elif variant == 'tiny':
    config.datasets = ('mnist',)
    config.train_examples = 256
    config.test_examples = 128
    config.encoder_kwargs = ml_collections.ConfigDict(dict(channels=(4, 8)))
    config.latent_dim = 8
    config.context_features = 8
    config.prediction_steps = 2
    config.runs = ml_collections.ConfigDict({
        'control': _run(num_steps=0),
        'cpc': _run(),
        'rows_gru': _run(form='rows', cpc_encoder='step_mlp', context='gru',
                         encoder_kwargs=dict(hidden=(16,))),
    })
    common.schedule(config, 4, 4, log_every=2)
    config.update(batch_size=16, eval_batches=2, probe_steps=5)
  return config
