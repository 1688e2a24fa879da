"""Tschannen et al. (ICLR 2020) Fig. 4a/b: equal estimated MI, different encoders.

The loss is |I_EST - t| for a target t in {2, 4} nats, so every model ends at
the same estimated MI; the encoders differ: a ConvNet (14x28x1 -> conv64 k5 s2
-> conv128 k5 s2 -> LayerNorm -> global average pool -> Dense 100) vs an MLP
[300, 300, 100]; bilinear critic. Finding: at equal t the ConvNet's
representation gives the higher linear-probe accuracy.

  python -m experiments.target_mi --config=experiments/configs/target_mi.py \
      --workdir=runs/target_mi
  # CPU-sized variant (fewer steps; 10000 train images for training and probe):
  python -m experiments.target_mi --config=experiments/configs/target_mi.py:quick \
      --workdir=runs/target_mi_quick
  # Loaded-CPU variant (300 steps, 10000 train images; cost below):
  python -m experiments.target_mi --config=experiments/configs/target_mi.py:cpu \
      --workdir=runs/target_mi_cpu
  # CI smoke size:
  ... --config=experiments/configs/target_mi.py:tiny

Cost on CPU: the ConvNet step (batch 128, two encoders, forward + backward)
takes ~3-5 s on a shared, loaded 2-core CPU (XLA CPU convolutions); the MLP
step is ~100x cheaper. 'quick' (3000 steps) is then ~3-4 h per ConvNet run;
'cpu' keeps the paper's batch 128 and Adam 1e-4 but trains only 300 steps
(~25-30 min per ConvNet run, all four runs ~1 h), evaluating every 100
steps. It shows how fast each encoder approaches t and the early probe
accuracy, not the converged (20000-step) values of the paper.

Each (t, encoder) trains in --workdir/t<t>_<encoder> (a rerun resumes);
target_mi.png and summary.json in --workdir collect all of them.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('', 'quick', 'cpu', 'tiny')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's settings; ``variant`` 'quick', 'cpu' or 'tiny' shrinks them."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = common.twoview_data(ml_collections.ConfigDict())
  # Encoder name -> its kwargs (infomax_jax.encoders.make_encoder).
  config.encoders = ml_collections.ConfigDict(dict(
      convnet=dict(features=100),
      mlp=dict(features=(300, 300, 100)),
  ))
  config.targets = (2.0, 4.0)     # t of the loss |I_EST - t| (nats)
  config.reference_encoder = 'mlp'   # findings.md: each encoder minus this one, per seed
  config.critic = 'bilinear'
  config.critic_kwargs = ml_collections.ConfigDict()
  config.bound = 'infonce'        # I_EST ('infonce' or 'nwj')
  common.training(config, num_steps=20000, eval_every=2000, checkpoint_every=2000)
  common.twoview_eval(config, eval_batches=20, probe_steps=500)
  # 'python' on CPU: XLA:CPU runs convolutions ~10x slower inside a scan.
  config.step_loop = 'scan'
  if variant == 'quick':
    config.train_examples = 10000
    common.schedule(config, 3000, 1000)
    common.twoview_eval(config, eval_batches=10, probe_steps=200)
  elif variant == 'cpu':
    config.step_loop = 'python'
    config.train_examples = 10000
    common.schedule(config, 300, 100, log_every=50)
    common.twoview_eval(config, eval_batches=10, probe_steps=200)
  elif variant == 'tiny':
    config.train_examples = 500
    config.encoders.mlp.features = (32, 16)
    config.encoders.convnet.features = 16
    config.targets = (2.0,)
    common.schedule(config, 4, 4, log_every=2)
    config.update(eval_batches=1, batch_size=16, probe_steps=10)
  return config
