"""CSV and run-folder helpers shared by the experiments that write tables.

(bounds, dgi, infograph.)
"""

import csv
import json
import logging as std_logging
import os
import shutil
from typing import Any, Sequence

from absl import logging


def read_csv(path: str) -> list[dict[str, str]]:
  """Rows of ``path`` as dicts ([] when the file does not exist)."""
  if not os.path.exists(path):
    return []
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def append_csv(path: str, fields: Sequence[str], rows: Sequence[dict]) -> None:
  """Appends ``rows``, writing the header first when the file is new or empty."""
  new = not os.path.exists(path) or os.path.getsize(path) == 0
  with open(path, 'a', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    if new:
      writer.writeheader()
    writer.writerows(rows)


def write_csv(path: str, fields: Sequence[str], rows: Sequence[dict]) -> None:
  """Replaces ``path`` with ``rows``."""
  if os.path.exists(path):
    os.remove(path)
  append_csv(path, fields, rows)


def run_dir(path: str, settings: dict[str, Any]) -> str:
  """The folder of one ``train.train`` run, cleared if it holds another run.

  ``train.train`` resumes from the checkpoints in its folder; checkpoints of a
  run with other settings (a changed config) cannot be resumed, so the folder
  is emptied first when its ``settings.json`` differs from ``settings``.

  Args:
    path: the run's folder.
    settings: everything that makes two runs the same run (JSON-able).

  Returns:
    ``path``, holding ``settings.json``.
  """
  text = json.dumps(settings, sort_keys=True, default=str)
  file = os.path.join(path, 'settings.json')
  if os.path.exists(file):
    with open(file) as f:
      if f.read() != text:
        logging.warning('%s holds a run with other settings; removing it',
                        path)
        shutil.rmtree(path)
  os.makedirs(path, exist_ok=True)
  with open(file, 'w') as f:
    f.write(text)
  return path


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
