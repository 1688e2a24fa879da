"""Config helpers: copies with overrides, and what makes two runs the same run."""

import json
import math
import os
import shutil
from typing import Any

from absl import logging
import ml_collections
import numpy as np


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


# Integer fields and their least valid value.
_INTS = {'seed': None, 'num_steps': 0, 'batch_size': 1, 'log_every': 1,
         'eval_every': 1, 'checkpoint_every': 1, 'keep_checkpoints': 1,
         'eval_batches': 1, 'probe_steps': 0, 'mlp_probe_steps': 0,
         'train_examples': 0, 'test_examples': 0, 'probe_train_examples': 0,
         'warmup_steps': 0, 'classifier_steps': 1, 'jacobian_examples': 1,
         'num_seeds': 1, 'probe_warm_steps': 0}


_PLURALS = ('bound', 'critic', 'encoder')


def _registries() -> dict[str, Any]:
  # Imported here: the library modules import this package.
  from infomax_jax import bounds
  from infomax_jax import critics
  from infomax_jax import dim
  from infomax_jax import encoders
  from infomax_jax import train
  return {'bound': bounds.REGISTRY, 'critic': critics.CRITICS,
          'encoder': encoders.ENCODERS, 'optimizer': train.OPTIMIZERS,
          'step_loop': train.STEP_LOOPS, 'estimator': dim.ESTIMATORS}


def _problems(config: Any, where: str) -> list[str]:
  out = []
  for name, least in _INTS.items():
    if name not in config:
      continue
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
      out.append(f'{where}{name} must be an integer, got {value!r}')
    elif least is not None and value < least:
      out.append(f'{where}{name} must be >= {least}, got {value}')
  for name, value in config.items():
    if 'learning_rate' in name and not name.endswith('_scale') and value is not None:
      if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        out.append(f'{where}{name} must be a finite number > 0, got {value!r}')
  every = config.get('log_every')
  if isinstance(every, int) and every >= 1:
    for name in ('num_steps', 'eval_every', 'checkpoint_every'):
      value = config.get(name)
      if isinstance(value, int) and value % every:
        out.append(f'{where}{name} ({value}) must be a multiple of '
                   f'{where}log_every ({every})')
  if 'noise_std' in config and not (
      isinstance(config.noise_std, (int, float)) and math.isfinite(config.noise_std)
      and config.noise_std >= 0):
    out.append(f'{where}noise_std must be a finite number >= 0, got {config.noise_std!r}')
  for name, table in _registries().items():
    values = [config.get(name)] if isinstance(config.get(name), str) else []
    # Lists of components ('bounds', 'critics', 'encoders'); an experiment's
    # own 'estimators' are labels of its own, not DIM's estimators.
    plural = config.get(name + 's') if name in _PLURALS else None
    if isinstance(plural, (tuple, list)) and all(isinstance(v, str) for v in plural):
      values += list(plural)
    elif isinstance(plural, (dict, ml_collections.ConfigDict)):
      values += list(plural.keys())
    for value in values:
      if value not in table:
        out.append(f'{where}{name}: unknown {name} {value!r}; valid {name}s '
                   f'are: {", ".join(sorted(table))}')
  return out


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the whole config before any work; raises one ValueError listing
  every problem: integer fields (and their least values), finite positive
  learning rates, noise, and component names (bound, critic, encoder,
  optimizer, step loop, DIM estimator, and their plural lists) against their
  registries. A grid's per-run overrides (``config.runs``) are checked too.
  """
  problems = _problems(config, 'config.')
  for name, fields in (config.get('runs') or {}).items():
    if isinstance(fields, (dict, ml_collections.ConfigDict)):
      merged = override(config, **dict(fields))
      problems += [p for p in _problems(merged, f'config.runs.{name}: ')
                   if p not in problems]
  if problems:
    raise ValueError('invalid config:\n  ' + '\n  '.join(problems))


def run_names(config: ml_collections.ConfigDict) -> list[str]:
  """The named runs of an experiment with a ``config.runs`` table:
  ``config.run_names`` (each checked), or every run with 'control' first."""
  names = list(config.get('run_names') or ())
  for name in names:
    if name not in config.runs:
      raise ValueError(f'config.run_names: unknown run {name!r}; valid: '
                       f'{sorted(config.runs.keys())}')
  return names or sorted(config.runs.keys(), key=lambda n: (n != 'control', n))
