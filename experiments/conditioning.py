"""Jacobian-conditioning experiment (Tschannen et al. 2020, Fig. 2).

  python -m experiments.conditioning --config=experiments/configs/conditioning.py:quick \
      --workdir=runs/conditioning_quick

Two-view training (``infomax_jax.twoview.run``) with residual-MLP encoders and
an evaluation hook: the percentiles of log kappa of g1's exact Jacobian
(``infomax_jax.jacobian``) on fixed training top halves. Writes metrics.jsonl
(eval records hold ``log_cond_p0`` ... ``log_cond_p100``), baselines.json,
checkpoints/ and conditioning.png to --workdir; rerunning the same command
resumes from the last checkpoint.
"""

from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from infomax_jax import jacobian
from infomax_jax import twoview


PERCENTILE_KEYS = tuple(f'log_cond_p{int(q)}' for q in jacobian.PERCENTILES)


def conditioning_eval(config: ml_collections.ConfigDict
                      ) -> Callable[[Any, int], dict[str, float]]:
  """``(params, step) -> {log_cond_p0: ..., ..., log_cond_p100: ...}`` for g1.

  The inputs are the first ``config.jacobian_examples`` clean training top
  halves (fixed for the whole run).
  """
  model = twoview.make_model(config)
  tops = twoview.Views(config, 'train').tops()[:config.jacobian_examples]

  @jax.jit
  def log_conds(params):
    g1 = lambda x: model.apply({'params': params}, x,
                               method=twoview.TwoView.encode_x)
    return jacobian.log_condition_numbers(g1, tops,
                                          chunk_size=config.jacobian_chunk)

  def evaluate(params, step):
    del step
    values = jacobian.percentiles(log_conds(params))
    return dict(zip(PERCENTILE_KEYS, (float(v) for v in values)))

  return evaluate


def run(config: ml_collections.ConfigDict, workdir: str):
  """Trains and plots accuracy, I_EST and log-kappa percentile bands vs step."""
  return twoview.run(
      config, workdir,
      title=f'residual-MLP encoders ({config.encoder_kwargs.num_layers} '
            f'blocks), {config.bound}',
      filename='conditioning.png', extra_eval=conditioning_eval(config),
      extra_panels=[(PERCENTILE_KEYS, r'log $\kappa(\partial g_1/\partial x)$')])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  # Flags are defined here, not at import, so that tests can import several
  # experiment modules into one process.
  _CONFIG = config_flags.DEFINE_config_file(
      'config', 'experiments/configs/conditioning.py', 'Experiment config.',
      lock_config=True)
  _WORKDIR = flags.DEFINE_string('workdir', 'runs/conditioning', 'Output folder.')
  app.run(main)
