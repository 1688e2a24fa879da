"""The entry point of every experiment: ``--config`` + ``--workdir``, the same everywhere.

An experiment file ends with::

  if __name__ == '__main__':
    runs.main(run, __file__)

which defines ``--config`` (default ``experiments/configs/NAME.py`` beside the
file, ``lock_config=True``: overrides with ``--config.FIELD=VALUE``) and
``--workdir`` (default ``runs/NAME``), quiets orbax's per-checkpoint INFO lines
and calls ``run(config, workdir)``. Flags are defined only when the module
runs as a program, so tests can import every experiment together.
"""

import logging as std_logging
import os
from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags


class _BelowWarningFrom(std_logging.Filter):
  """Drops records below WARNING logged from a package's source files."""

  def __init__(self, package: str):
    super().__init__()
    self.part = f'{os.sep}{package}{os.sep}'

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or self.part not in record.pathname


def quiet_orbax() -> None:
  """Hides orbax's INFO lines (several per checkpoint) but keeps ours."""
  logging.get_absl_handler().addFilter(_BelowWarningFrom('orbax'))


def main(run: Callable[[Any, str], Any], file: str) -> None:
  """Defines the flags of experiment ``file`` and runs ``run(config, workdir)``.

  Args:
    run: ``(config, workdir) -> anything``: the experiment.
    file: the experiment's ``__file__``; its stem names the default config
      (``configs/STEM.py`` beside it) and workdir (``runs/STEM``).
  """
  name = os.path.splitext(os.path.basename(file))[0]
  config = config_flags.DEFINE_config_file(
      'config', os.path.join(os.path.dirname(os.path.abspath(file)), 'configs',
                             f'{name}.py'),
      f'{name} config (ml_collections); append :VARIANT for a smaller run, '
      'override a field with --config.FIELD=VALUE.', lock_config=True)
  workdir = flags.DEFINE_string('workdir', os.path.join('runs', name),
                                'Output folder (resumed when it holds a run).')

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    quiet_orbax()
    run(config.value, workdir.value)

  app.run(_main)
