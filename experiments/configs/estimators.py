"""Every bound x {separable, concat} critic on the suite of known-MI distributions.

Full grid (15 tasks x 8 bounds x 2 critics x 2 seeds = 480 estimates of
10 000 samples each; 240 compilations):

  python -m experiments.estimators --config=experiments/configs/estimators.py \
      --workdir=/tmp/estimators

It took 4 minutes on one H100 machine as 5 shard processes
(--config.num_shards=5 --config.shard_index=i, then one run with the default
single shard, which finds every estimate done and writes the tables); on a
2-core CPU shared with other jobs each estimate takes 20-70 s (compilation
included), i.e. hours: there, run the ``check`` variant.

``check`` (issue 19: the default ``estimate_mi`` on the 21 benchmark-family
tasks and on 6 high-MI tasks, one seed) writes report.md / report.csv: per
task the truth, the estimate, its 95 % interval, whether the interval covers
the truth, seconds, and BMI's InfoNCE (defaults) on the same samples when
``config.bmi_results`` exists (benchmarks/estimate_bmi.py writes it); the
targets: >= 90 % of the suite within 10 % or 0.1 nats, the 2 / 5 / 8-nat
tasks within 15 %, and the time ratio to BMI. ``coverage`` adds 20
repetitions (fresh samples and seeds) of COVERAGE_TASKS (every suite and
report high-MI task) and the coverage of the true MI by the interval per
task:

  python -m experiments.estimators \
      --config=experiments/configs/estimators.py:coverage --workdir=/tmp/est_cov
  python -m benchmarks.estimate_bmi --compare=/tmp/i19_compare \
      --bmi_python=/tmp/bmi_venv/bin/python --coverage_from=/tmp/est_cov

(the second runs ours and BMI back to back on the same samples and writes the
report with the coverage column; session 8: 56 min for the coverage run as
two single-threaded shards on 2 cores, 18 min for the comparison).

``quick`` (3 tasks, 2 bounds, 2000 samples, 300 steps; a smoke run):

  python -m experiments.estimators \
      --config=experiments/configs/estimators.py:quick --workdir=/tmp/est_quick

Writes results.jsonl (one line per estimate; a rerun skips the estimates it
already holds), table.md and table.csv (estimate vs truth, mean over seeds),
timing.md, and estimators.png (estimate against true MI, one panel per bound).
What it should show: with the concat critic every bound is within 10 % on the
Gaussian, Student-t and marginally transformed tasks up to ~1.3 nats, and all
bounds miss the spiral (a strongly non-linear map of five coordinates) and,
by 10-20 %, the 25-D sparse and 5-D Student-t tasks; separable critics are
worse, and the exponential bounds (nwj, tuba, mine) are unstable with them.
"""

import ml_collections

from experiments.configs import common
from infomax_jax import distributions

# The coverage experiment's tasks: the whole suite and the high-MI tasks of
# the report (20 repetitions each; ~540 fits, ~40 min as 2 shards on 2 cores).
COVERAGE_TASKS = tuple(distributions.TASKS) + tuple(
    t for t in distributions.HIGH_MI_TASKS if not t.startswith('asinh'))

ALL_BOUNDS = ('infonce', 'nwj', 'dv', 'mine', 'jsd', 'smile', 'tuba',
              'interpolated')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The full sweep, or the ``quick`` smoke variant (``...py:quick``)."""
  config = ml_collections.ConfigDict()
  config.tasks = tuple(distributions.TASKS)    # names, see distributions.TASKS
  config.bounds = ALL_BOUNDS                   # see infomax_jax.bounds.REGISTRY
  config.critics = ('separable', 'concat')     # see infomax_jax.critics.CRITICS
  config.seeds = (0, 1)                        # data seed = estimator seed
  config.num_samples = 10_000                  # pairs per task (train + test)
  config.shard_index = 0                       # this process runs the tasks
  config.num_shards = 1                        #   tasks[shard_index::num_shards]
  # The default bound / critic of estimate_mi: its row of the summary checks
  # the accuracy target (within 10 % or 0.1 nats on >= 80 % of the tasks).
  config.default_bound = 'infonce'
  config.default_critic = 'concat'
  # Critic architectures (estimate_mi's CRITIC_DEFAULTS).
  config.separable_hidden = (64,)              # each of phi_x, phi_y
  config.separable_embed_dim = 16
  config.concat_hidden = (16, 8)               # MLP on [x, y]
  # The default estimator's report (report.md; the 'check' variant): high-MI
  # tasks (distributions.HIGH_MI_TASKS, 15 % tolerance), the interval's
  # coverage over repetitions, and BMI's InfoNCE on the same samples (the
  # jsonl that benchmarks/estimate_bmi.py writes; '' or a missing file: none).
  config.report = False
  config.high_mi_tasks = ()
  config.coverage_tasks = ()
  config.coverage_seeds = ()
  config.bmi_results = ''
  # estimate_mi keyword arguments (its defaults).
  config.estimator = ml_collections.ConfigDict(dict(
      batch_size=128,        # K: pairs per training batch
      steps=600,             # maximum training steps
      learning_rate=2e-2,    # Adam's peak learning rate
      lr_schedule='cosine',  # decays to 5 % of the peak over `steps`
      eval_every=100,        # steps per jitted chunk between held-out estimates
      patience=3,            # evaluations without improvement before stopping
      test_fraction=0.5,     # held-out share of num_samples
      standardize='rank',    # per-coordinate map: rank, zscore or none
      ensemble=2,            # critics trained in one vmapped program
  ))
  if arg in ('check', 'coverage'):
    config.bounds = (config.default_bound,)
    config.critics = (config.default_critic,)
    config.seeds = (0,)
    config.report = True
    config.bmi_results = '/tmp/bmi_samples/bmi_infonce.jsonl'
  if arg in ('check', 'coverage'):
    # Base tasks and one per-coordinate transform (rank standardisation
    # undoes every such transform, so asinh(x) would repeat half_cube(both)).
    config.high_mi_tasks = tuple(t for t in distributions.HIGH_MI_TASKS
                                 if not t.startswith('asinh'))
  if arg == 'coverage':                        # check, plus 20 repetitions
    config.coverage_tasks = COVERAGE_TASKS
    config.coverage_seeds = tuple(range(20))
  elif arg == 'quick':
    config.tasks = ('normal-1x1-0.75', 'student-2x2-dof3',
                    'spiral(x):normal-5x5-sparse')
    config.bounds = ('infonce', 'smile')
    config.num_samples = 2000
    config.estimator.steps = 300
    config.estimator.eval_every = 50
  elif arg and arg not in ('check', 'coverage'):
    raise common.unknown_variant(arg, ('check', 'coverage', 'quick'))
  return config
