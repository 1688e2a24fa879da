"""Checkpoints that cannot be restored wrong: checksummed, finite, with fallback.

``save`` refuses a state with a non-finite value (naming the leaf) and writes
beside each orbax checkpoint a SHA-256 of the state's bytes. ``restore``
tries the newest checkpoint first and checks what it read — orbax's own
validation (structure, shapes), the checksum, finiteness, the step — and on
any failure warns in one line and tries the one before; the unusable ones
are moved to ``workdir/corrupt_checkpoints/`` so that the run can save at
those steps again. With none usable it raises one paragraph saying what was
tried.
"""

import hashlib
import json
import os
import shutil
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


def _reason(error: Exception) -> str:
  """The first line of an error, without tensorstore's pointer to more detail."""
  text = str(error).strip()
  if not text:
    return type(error).__name__
  return text.splitlines()[0].split(' See full TensorStore details')[0][:200]


def _host_leaves(state: PyTree) -> list[tuple[str, np.ndarray]]:
  """(path, host array) of every leaf: one device-to-host copy of the state."""
  return [(jax.tree_util.keystr(path), np.asarray(leaf)) for path, leaf in
          jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]]


def checksum(leaves: list[tuple[str, np.ndarray]]) -> str:
  """SHA-256 over the paths, shapes, dtypes and bytes of ``_host_leaves``."""
  digest = hashlib.sha256()
  for path, array in leaves:
    digest.update(f'{path}{array.shape}{array.dtype}'.encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def non_finite_leaf(leaves: list[tuple[str, np.ndarray]]) -> Optional[str]:
  """The path of the first leaf holding a NaN or inf (None if all finite)."""
  for path, array in leaves:
    if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
      return path
  return None


class CheckpointError(RuntimeError):
  """Checkpoints exist but none of them can be restored."""


class Checkpoints:
  """An orbax ``CheckpointManager`` in ``workdir/checkpoints`` with integrity checks.

  Args:
    workdir: the run folder.
    max_to_keep: checkpoints kept (older ones are deleted by orbax).
    primary: whether this process writes the checksum files (process 0).
  """

  def __init__(self, workdir: str, max_to_keep: int = 2, primary: bool = True):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, 'checkpoints')
    self.max_to_keep = max_to_keep
    self.primary = primary
    self._open()

  def _open(self) -> None:
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=self.max_to_keep, create=True))

  def _sum_path(self, step: int) -> str:
    return os.path.join(self.directory, f'{step}.sha256')

  def save(self, step: int, state: PyTree) -> None:
    """Saves ``state`` at ``step``, unless it holds a non-finite value."""
    leaves = _host_leaves(state)
    bad = non_finite_leaf(leaves)
    if bad is not None:
      last = self.manager.latest_step()
      raise FloatingPointError(
          f'the train state at step {step} holds non-finite values (first: '
          f'{bad}); not saving it, the last good checkpoint '
          f'({"step " + str(last) if last is not None else "none"}) is kept')
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self.manager.wait_until_finished()
    if self.primary:
      with open(self._sum_path(step), 'w') as f:
        json.dump({'step': step, 'sha256': checksum(leaves)}, f)
      kept = {str(s) for s in self.manager.all_steps()}
      for name in os.listdir(self.directory):   # checksums of deleted steps
        if name.endswith('.sha256') and name[:-7] not in kept:
          os.remove(os.path.join(self.directory, name))

  def _check(self, step: int, state: PyTree) -> None:
    held = np.unique(np.asarray(jax.device_get(state.step)))   # one per replica
    if held.tolist() != [step]:
      raise ValueError(f'it holds step {held.tolist()}')
    leaves = _host_leaves(state)
    bad = non_finite_leaf(leaves)
    if bad is not None:
      raise ValueError(f'non-finite values in {bad}')
    path = self._sum_path(step)
    if os.path.exists(path):
      with open(path) as f:
        expected = json.load(f)['sha256']
      if checksum(leaves) != expected:
        raise ValueError('its bytes do not match the checksum written with it')

  def _set_aside(self, step: int) -> None:
    if not self.primary:
      return
    dest = os.path.join(self.workdir, 'corrupt_checkpoints')
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, str(step))
    if os.path.exists(target):
      shutil.rmtree(target)
    shutil.move(os.path.join(self.directory, str(step)), target)
    if os.path.exists(self._sum_path(step)):
      shutil.move(self._sum_path(step), target + '.sha256')

  def restore(self, abstract: PyTree, log=print) -> tuple[Optional[int], PyTree]:
    """(step, state) of the newest usable checkpoint; (None, None) if none exist.

    Raises:
      RuntimeError: checkpoints exist but none is usable.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    failures = []
    for step in steps:
      try:
        state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        self._check(step, state)
      except Exception as e:   # orbax/tensorstore raise many types here
        reason = _reason(e)
        failures.append(f'step {step}: {reason}')
        log(f'warning: the checkpoint at step {step} in {self.directory} is '
            f'unusable ({reason}); trying the previous one', flush=True)
        continue
      if failures:   # move the unusable newer ones aside, then reopen
        self.manager.close()
        for bad_step in steps[:steps.index(step)]:
          self._set_aside(bad_step)
        self._open()
      return step, state
    if not steps:
      return None, None
    raise CheckpointError(
        f'no usable checkpoint in {self.directory}: ' + '; '.join(failures) +
        '. The run cannot resume from it; move the folder away (or choose '
        'another --workdir) to start the run again from step 0.')

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def close(self) -> None:
    self.manager.close()
