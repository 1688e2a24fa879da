"""Invertible-encoder experiment (Tschannen et al. 2020, Fig. 1a/b).

  python -m experiments.invertible --config=experiments/configs/invertible.py:quick \
      --workdir=runs/invertible_quick

Writes metrics.jsonl, baselines.json, checkpoints/ and invertible.png to
--workdir; rerunning the same command resumes from the last checkpoint.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from infomax_jax import twoview

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/invertible.py', 'Experiment config.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', 'runs/invertible', 'Output folder.')


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  config = _CONFIG.value
  twoview.run(config, _WORKDIR.value,
              title=f'RealNVP encoders, {config.bound} '
                    f'({config.encoder_kwargs.num_couplings} couplings)',
              filename='invertible.png')


if __name__ == '__main__':
  app.run(main)
