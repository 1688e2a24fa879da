"""Jacobian-conditioning experiment (Tschannen et al. 2020, Fig. 2).

  python -m experiments.conditioning --config=experiments/configs/conditioning.py:quick \
      --workdir=runs/conditioning_quick

Two-view training with residual-MLP encoders and an evaluation hook: the
percentiles of log kappa of g1's exact Jacobian (``infomax_jax.jacobian``) on
fixed training top halves. Writes metrics.jsonl (eval records hold
``log_cond_p0`` ... ``log_cond_p100``), baselines.json, checkpoints/ and
conditioning.png to --workdir; rerunning the same command resumes.
"""

from typing import Any, Callable

import jax
import ml_collections

from infomax_jax import jacobian
from infomax_jax import runs
from infomax_jax import tschannen
from infomax_jax import twoview

PERCENTILE_KEYS = tuple(f'log_cond_p{int(q)}' for q in jacobian.PERCENTILES)


def conditioning_eval(config: ml_collections.ConfigDict,
                      train_views: twoview.Views
                      ) -> Callable[[Any, int], dict[str, float]]:
  """``(params, step) -> {log_cond_p0: ..., ..., log_cond_p100: ...}`` for g1,
  on the first ``config.jacobian_examples`` clean training top halves."""
  model = twoview.make_model(config)
  tops = train_views.tops()[:config.jacobian_examples]

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


def make_task(config, train_views, test_views, **kwargs):
  """The two-view task with the conditioning hook."""
  return twoview.make_task(config, train_views, test_views,
                           extra_eval=conditioning_eval(config, train_views),
                           **kwargs)


def run(config: ml_collections.ConfigDict, workdir: str):
  """Trains and plots accuracy, I_EST and log-kappa percentile bands vs step."""
  return tschannen.run(
      config, workdir, make_task=make_task, filename='conditioning.png',
      title=f'residual-MLP encoders ({config.encoder_kwargs.num_layers} '
            f'blocks), {config.bound}',
      extra_panels=[(PERCENTILE_KEYS, r'log $\kappa(\partial g_1/\partial x)$')])


if __name__ == '__main__':
  runs.main(run, __file__)
