"""What keeps a run folder whole: one process at a time, one config per run.

* ``lock(workdir)``: an exclusive ``flock`` on ``workdir/.lock``, held for the
  run's life. A second process fails at once, naming the holder. The kernel
  drops the lock when its process dies (even by SIGKILL), so a stale lock
  file is taken over, with a line saying whose it was. Re-entrant within a
  process (an experiment's entry point and its training loop may both ask).
* ``pin_config(workdir, config, resuming)``: the resolved config is written to
  ``workdir/config.json`` when a run starts; a resumed run whose config
  differs in a field that changes the run is refused, listing the fields.
  ``UNPINNED`` fields (how long to train, how often to log or save, where the
  data lie, which runs of a grid to list) may change; ``allow_changes``
  admits more, explicitly.
"""

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from typing import Any, Iterable, Iterator

import ml_collections

from infomax_jax.runs.files import atomic_open

LOCK_FILE = '.lock'
CONFIG_FILE = 'config.json'

# Fields a resumed run may change: they do not alter the steps already taken
# (replica_devices: the replicas' layout over devices; equal results to float
# tolerance).
# (Grid fields list the runs of an experiment; each run's own settings are
# pinned in its own folder.)
UNPINNED = frozenset({
    'num_steps', 'eval_every', 'checkpoint_every', 'keep_checkpoints',
    'data_dir', 'data_source', 'skip_unfinished', 'run_names', 'eval_at_init',
    'runs', 'datasets', 'samplings', 'bounds', 'critics', 'targets',
    'encoders', 'gradient_penalties', 'seeds', 'probe_runs', 'probe_steps',
    'mlp_probe_steps', 'eval_batches', 'step_loop', 'reference_critic',
    'reference_encoder', 'replica_devices'})

_allowed: set[str] = set()
_held: dict[str, list] = {}   # realpath -> [fd, depth]


class WorkdirLocked(RuntimeError):
  """Another live process holds the run folder."""


class ConfigMismatch(ValueError):
  """A rerun's config differs from the one the run was started with."""


def allow_changes(fields: Iterable[str]) -> None:
  """Admits changes of these config fields on resume (``--allow_config_change``)."""
  _allowed.update(f for f in fields if f)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except OSError as e:
    return e.errno == errno.EPERM
  return True


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[None]:
  """Holds ``workdir``'s lock for the duration of the ``with`` block."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(os.path.realpath(workdir), LOCK_FILE)
  if path in _held:
    _held[path][1] += 1
    try:
      yield
    finally:
      _held[path][1] -= 1
    return
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.pread(fd, 4096, 0).decode(errors='replace').strip() or 'unknown'
    os.close(fd)
    raise WorkdirLocked(
        f'{workdir} is in use by another run ({holder}); wait for it to end '
        'or choose another --workdir') from None
  previous = os.pread(fd, 4096, 0).decode(errors='replace').strip()
  if previous.startswith('pid '):
    pid = int(previous.split()[1])
    if pid != os.getpid() and not _alive(pid):
      print(f'{workdir}: took over the stale lock of pid {pid}, which is no '
            'longer running', flush=True)
  os.ftruncate(fd, 0)
  os.pwrite(fd, (f'pid {os.getpid()} on {socket.gethostname()} since '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S")}: '
                 f'{" ".join(sys.argv)}\n').encode(), 0)
  _held[path] = [fd, 1]
  try:
    yield
  finally:
    del _held[path]
    os.ftruncate(fd, 0)   # a clean end leaves no holder behind (only a crash does)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _flat(value: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  if isinstance(value, dict):
    out = {}
    for k, v in value.items():
      out.update(_flat(v, f'{prefix}{k}.'))
    return out
  if isinstance(value, (list, tuple)):
    value = [_flat(v) if isinstance(v, dict) else v for v in value]
  return {prefix[:-1]: value}


def _plain(config: Any) -> dict[str, Any]:
  """JSON round trip: tuples and lists compare equal, as on disk."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  return json.loads(json.dumps(config, sort_keys=True, default=str))


def config_diff(stored: dict, config: Any) -> list[str]:
  """The pinned fields where ``config`` differs from ``stored``: 'f: a -> b'."""
  old, new = _flat(_plain(stored)), _flat(_plain(config))
  free = UNPINNED | _allowed
  lines = []
  for name in sorted(set(old) | set(new)):
    if name.split('.')[0] in free or old.get(name) == new.get(name):
      continue
    lines.append(f'{name}: {old.get(name, "(absent)")!r} -> '
                 f'{new.get(name, "(absent)")!r}')
  return lines


def check_config(workdir: str, config: Any) -> None:
  """Refuses early (before any data is loaded) a rerun of a run folder that
  holds checkpoints of another config; writes nothing."""
  checkpoints = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints)):
    _compare(workdir, config)


def _compare(workdir: str, config: Any) -> None:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    stored = json.load(f)
  diff = config_diff(stored, config)
  if diff:
    raise ConfigMismatch(
        f'{workdir} holds a run started with another config; refusing to '
        f'resume it with these changes:\n  ' + '\n  '.join(diff) +
        f'\nUse another --workdir for a new run (or --allow_config_change='
        f'{",".join(d.split(":")[0].split(".")[0] for d in diff)} if the '
        'change is intended).')


def pin_config(workdir: str, config: Any, resuming: bool) -> None:
  """Writes ``workdir/config.json`` (fresh run) or checks the rerun against it.

  Raises:
    ConfigMismatch: resuming with a config that differs in pinned fields.
  """
  if resuming:
    _compare(workdir, config)
  path = os.path.join(workdir, CONFIG_FILE)
  with atomic_open(path) as f:
    json.dump(_plain(config), f, indent=1, sort_keys=True)
