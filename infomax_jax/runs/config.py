"""Config helpers: copies with overrides, and what makes two runs the same run."""

import json
import os
import shutil
from typing import Any

from absl import logging
import ml_collections


def override(config: ml_collections.ConfigDict, **fields: Any) -> ml_collections.ConfigDict:
  """An unlocked copy of ``config`` with ``fields`` set (added if new).

  Dict values become ``ConfigDict`` so nested fields read as attributes.
  """
  out = ml_collections.ConfigDict(config.to_dict())
  for name, value in fields.items():
    if isinstance(value, dict):
      value = ml_collections.ConfigDict(value)
    out[name] = value
  return out


def to_json(value: Any) -> str:
  """Canonical JSON of a config (or any JSON-able settings), sorted keys."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  return json.dumps(value, sort_keys=True, default=str)


def run_dir(path: str, settings: Any) -> str:
  """The folder of one sub-run, emptied first if it holds a run of other settings.

  ``train.train`` resumes from the checkpoints in its folder; those of a run
  with other settings cannot be resumed, so the folder is cleared when its
  ``settings.json`` differs from ``settings`` (everything that makes two runs
  the same run: a config, or a dict of the fields that matter).

  Returns:
    ``path``, holding ``settings.json``.
  """
  text = to_json(settings)
  file = os.path.join(path, 'settings.json')
  if os.path.exists(file):
    with open(file) as f:
      if f.read() != text:
        logging.warning('%s holds a run with other settings; removing it', path)
        shutil.rmtree(path)
  os.makedirs(path, exist_ok=True)
  with open(file, 'w') as f:
    f.write(text)
  return path
