"""Atomic file writes: a reader, or a run interrupted mid-write, sees the old
file or the new one, never half of one."""

import contextlib
import os
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'w', **kwargs) -> Iterator[IO]:
  """Opens ``path + '.tmp'`` for writing; renames it onto ``path`` when the
  block ends without an error (and removes it when the block raises).

  Args:
    path: the file to (re)place.
    mode: a write mode, ``'w'`` or ``'wb'``.
    **kwargs: passed to ``open`` (e.g. ``newline=''`` for CSV).
  """
  if mode not in ('w', 'wb'):
    raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
  tmp = path + '.tmp'
  try:
    with open(tmp, mode, **kwargs) as f:
      yield f
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
  os.replace(tmp, path)
