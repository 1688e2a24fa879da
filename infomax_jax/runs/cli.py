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
import sys
from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from infomax_jax.runs.checkpoints import CheckpointError
from infomax_jax.runs.config import validate
from infomax_jax.runs.workdir import ConfigMismatch
from infomax_jax.runs.workdir import WorkdirLocked
from infomax_jax.runs.workdir import allow_changes
from infomax_jax.runs.workdir import check_config
from infomax_jax.runs.workdir import lock


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

  allow = flags.DEFINE_list(
      'allow_config_change', [], 'Config fields a rerun may change although '
      'the workdir holds a run started with other values (see '
      'infomax_jax.runs.workdir).')

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    quiet_orbax()
    try:   # the whole config, before any data is loaded
      validate(config.value)
    except ValueError as e:
      raise app.UsageError(str(e)) from None
    allow_changes(allow.value)
    try:
      with lock(workdir.value):
        check_config(workdir.value, config.value)
        run(config.value, workdir.value)
    except (WorkdirLocked, ConfigMismatch, CheckpointError) as e:
      # The run's folder is in use or cannot be resumed: say so, no traceback.
      print(f'FATAL: {e}', file=sys.stderr)
      sys.exit(1)

  app.run(_main, flags_parser=_parse_flags)


def _parse_flags(argv):
  """absl's parsing, with a config override error reported in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error:
    raise
  except Exception as e:   # e.g. --config.nope=1: KeyError/AttributeError
    if isinstance(e, (KeyError, AttributeError)) and e.args:
      field = str(e.args[0]).strip('\'"')
      message = f"the config has no field '{field}'"
    else:
      message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    print(f'FATAL: bad flag ({message}) in: {" ".join(argv[1:])}', file=sys.stderr)
    sys.exit(2)
