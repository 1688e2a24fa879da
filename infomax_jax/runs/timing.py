"""One timing record per run folder: ``workdir/timing.json``.

``{"train": {"seconds": 812.4, "compile_seconds": 9.1, "steps": 6000,
"steps_per_s": 7.4, "segments": 2}, ...}``: one entry per timed part (by
default 'train'); a resumed run adds its segment to the entry, so the total
covers the whole run, not only its last segment.
"""

import json
import os
from typing import Any, Optional

from infomax_jax.runs.files import atomic_open

TIMING_FILE = 'timing.json'


def read_timing(workdir: str) -> dict[str, dict[str, Any]]:
  """All entries of ``workdir/timing.json`` ({} when there is none)."""
  path = os.path.join(workdir, TIMING_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def seconds(workdir: str, name: str = 'train') -> float:
  """The total seconds of entry ``name`` (0 when the run has none yet)."""
  return float(read_timing(workdir).get(name, {}).get('seconds', 0.0))


def add_time(workdir: str, seconds: float, *, name: str = 'train',
             steps: Optional[int] = None, compile_seconds: float = 0.0,
             reset: bool = False, **extra: Any) -> dict[str, Any]:
  """Adds one segment of ``seconds`` (and ``steps``) to entry ``name``; returns it.

  ``reset=True`` replaces the entry (a run restarted from step 0).
  """
  timing = read_timing(workdir)
  entry = {} if reset else timing.get(name, {})
  entry['seconds'] = entry.get('seconds', 0.0) + float(seconds)
  entry['compile_seconds'] = entry.get('compile_seconds', 0.0) + float(compile_seconds)
  entry['segments'] = entry.get('segments', 0) + 1
  if steps is not None:
    entry['steps'] = entry.get('steps', 0) + int(steps)
    run_seconds = entry['seconds'] - entry['compile_seconds']
    entry['steps_per_s'] = entry['steps'] / max(run_seconds, 1e-9)
  entry.update(extra)
  timing[name] = entry
  os.makedirs(workdir, exist_ok=True)
  with atomic_open(os.path.join(workdir, TIMING_FILE)) as f:
    json.dump(timing, f, indent=1)
  return entry
