"""Config helpers: copies with overrides, and what makes two runs the same run."""

import json
from typing import Any

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
