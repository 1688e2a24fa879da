"""Deep InfoMax (Hjelm et al., ICLR 2019), Table 1 protocol.

Encoder: conv 64-128-256 (4×4, stride 2) -> FC 1024 -> Y (64), batch norm;
28×28 images are zero-padded to 32×32, so the local map is 8×8×128 as on
CIFAR-10. Critics: encode-and-dot, 1×1-conv residual networks with LayerNorm
(``critic_units`` wide). Runs (``config.runs``): DIM(G) (α=1, β=0) and DIM(L)
(α=0, β=1) with each estimator (infonce, jsd, dv), with prior matching
(γ > 0) and without, InfoNCE with prior matching plus an R1 penalty on the
discriminator, and the random-init control. Probes: linear (L-BFGS) and
one hidden layer of 200 (Adam) on conv / fc / Y.

  # Full protocol (paper: Adam 1e-4, batch 64; 1000 epochs of CIFAR-10 in the
  # paper, here 20000 steps per run on MNIST / Fashion-MNIST / CIFAR-10):
  python -m experiments.dim --config=experiments/configs/dim.py --workdir=runs/dim
  # CPU variant: MNIST and Fashion-MNIST offline, 20000 train images, 600
  # steps per run, 512-unit critics, probes on 10000 train images, 12 runs:
  python -m experiments.dim --config=experiments/configs/dim.py:cpu \
      --workdir=runs/dim_cpu
  # DIM(L) vs DIM(G) InfoNCE at 2000 steps (copy the :cpu run folders of
  # control, L_infonce and G_infonce into the workdir to resume from 600):
  python -m experiments.dim --config=experiments/configs/dim.py:cpu_long \
      --workdir=runs/dim_cpu_long
  # CI smoke size:
  ... --config=experiments/configs/dim.py:tiny

CIFAR-10 (``config.datasets = ('cifar10',)``) loads through tfds and needs
a prepared tfds copy or internet access.
"""

import ml_collections

from experiments.configs import common

VARIANTS = ('', 'cpu', 'cpu_long', 'tiny')


def _runs(prior_gamma: dict) -> ml_collections.ConfigDict:
  """Table 1 grid: control, DIM(G) and DIM(L) × estimators × prior on/off."""
  runs = {'control': dict(num_steps=0, alpha=0.0, beta=1.0, gamma=0.0,
                          estimator='infonce')}
  for model, (alpha, beta) in (('G', (1.0, 0.0)), ('L', (0.0, 1.0))):
    for estimator in ('infonce', 'jsd', 'dv'):
      runs[f'{model}_{estimator}'] = dict(alpha=alpha, beta=beta, gamma=0.0,
                                          estimator=estimator)
      runs[f'{model}_{estimator}_prior'] = dict(
          alpha=alpha, beta=beta, gamma=prior_gamma[model], estimator=estimator)
    # Not in the paper: the prior game with an R1 penalty on D (Mescheder et
    # al. 2018). Without it the game oscillates and σ(Y) does not settle
    # nearer the prior (BUILD_NOTES.md; experiments/prior_game.py).
    runs[f'{model}_infonce_prior_r1'] = dict(
        alpha=alpha, beta=beta, gamma=prior_gamma[model], estimator='infonce',
        gradient_penalty=10.0)
  return ml_collections.ConfigDict(runs)


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's settings; ``variant`` 'cpu', 'cpu_long' or 'tiny' shrinks them."""
  if variant not in VARIANTS:
    raise common.unknown_variant(variant, VARIANTS)
  config = ml_collections.ConfigDict()
  common.image_data(config)
  config.encoder = 'dim_conv'
  config.encoder_kwargs = ml_collections.ConfigDict(dict(
      features=64, channels=(64, 128, 256), fc_units=1024, norm='batch'))
  config.critic_units = 2048
  config.discriminator_hidden = (1000, 200)
  # Objective weights and estimator (overridden per run).
  config.alpha = 0.0              # global MI
  config.beta = 1.0               # local MI
  config.gamma = 0.0              # prior matching
  config.gradient_penalty = 0.0   # R1 weight on the discriminator
  config.disc_learning_rate_scale = 1.0  # D's Adam step = this × learning_rate
  config.estimator = 'infonce'    # 'infonce', 'jsd', 'dv'
  # The paper: γ = 0.1 with DIM(L), γ = 1 with DIM(G) (α = 1 there).
  config.runs = _runs({'G': 1.0, 'L': 0.1})
  # Which runs of config.runs, in this order (() = all, control first).
  config.run_names = ()
  config.skip_unfinished = False  # True: tabulate finished runs, train nothing
  common.training(config, batch_size=64, num_steps=20000, eval_every=20000,
                  checkpoint_every=2000)
  config.step_loop = 'scan'       # 'python' on CPU: XLA:CPU convs are slow in a scan
  config.eval_at_init = False     # the 'control' run reports the init
  config.eval_batches = 20        # test batches for the test InfoNCE
  # Probes.
  config.probe_train_examples = 0  # 0: every train image used for training
  config.probe_steps = 300         # L-BFGS iterations (linear probe)
  config.mlp_probe_hidden = 200
  config.mlp_probe_steps = 3000    # Adam steps (non-linear probe)
  config.mlp_probe_batch = 256
  config.mlp_probe_learning_rate = 1e-3
  config.energy_examples = 2000    # test images in the energy distance to the prior
  if variant in ('cpu', 'cpu_long'):
    config.step_loop = 'python'
    # A stronger prior weight than the paper's 0.1, to see the term act in
    # a short run.
    config.runs.L_infonce_prior1 = ml_collections.ConfigDict(dict(
        alpha=0.0, beta=1.0, gamma=1.0, estimator='infonce'))
    # ... and with a 10x faster discriminator (two time-scale updates).
    config.runs.L_infonce_prior1_d10 = ml_collections.ConfigDict(dict(
        alpha=0.0, beta=1.0, gamma=1.0, estimator='infonce',
        disc_learning_rate_scale=10.0))
    # ... and with the R1 penalty on D (L_infonce_prior_r1 has γ = 0.1).
    config.runs.L_infonce_prior1_r1 = ml_collections.ConfigDict(dict(
        alpha=0.0, beta=1.0, gamma=1.0, estimator='infonce',
        gradient_penalty=10.0))
    config.run_names = ('control', 'L_infonce', 'G_infonce', 'L_infonce_prior',
                        'L_infonce_prior1', 'L_infonce_prior1_d10',
                        'L_infonce_prior_r1', 'L_infonce_prior1_r1', 'L_jsd',
                        'L_dv', 'G_jsd', 'G_dv')
    config.train_examples = 20000
    config.probe_train_examples = 10000
    config.critic_units = 512
    common.schedule(config, 600, 600, log_every=50, checkpoint_every=200)
    config.eval_batches = 10
    config.probe_steps = 200
    config.mlp_probe_steps = 1500
    if variant == 'cpu_long':
      # DIM(L) against DIM(G) at 2000 steps (6.4 epochs of the 20000 images):
      # the global InfoNCE saturates at log K within 600 steps, the local one
      # is still rising. Resumes the 600-step runs of :cpu when their
      # checkpoints are copied into the workdir (resume is exact).
      config.datasets = ('fashion_mnist', 'mnist')
      config.run_names = ('control', 'L_infonce', 'G_infonce')
      common.schedule(config, 2000, 2000, checkpoint_every=200)
  elif variant == 'tiny':
    config.step_loop = 'python'
    config.datasets = ('mnist',)
    config.train_examples = 256
    config.test_examples = 128
    config.encoder_kwargs.channels = (8, 16, 16)
    config.encoder_kwargs.fc_units = 32
    config.encoder_kwargs.features = 8
    config.critic_units = 16
    config.discriminator_hidden = (16,)
    config.runs = ml_collections.ConfigDict({
        'control': dict(num_steps=0, alpha=0.0, beta=1.0, gamma=0.0,
                        estimator='infonce'),
        'G_dv': dict(alpha=1.0, beta=0.0, gamma=0.0, estimator='dv'),
        'L_jsd_prior': dict(alpha=0.0, beta=1.0, gamma=0.1, estimator='jsd'),
    })
    common.schedule(config, 4, 4, log_every=2)
    config.update(batch_size=16, eval_batches=2, probe_steps=5,
                  mlp_probe_steps=5, mlp_probe_batch=32)
  return config
