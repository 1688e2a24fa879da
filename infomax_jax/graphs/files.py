"""The data folder of the graph loaders and their missing-file message.

Planetoid (``planetoid/ind.<name>.*``) and TU sets (``<name>/<name>_*.txt``)
are looked up under ``data_dir`` or ``$INFOMAX_DATA_DIR``, the same setting as
the image data of ``infomax_jax.data``.
"""

import os
from typing import Optional, Sequence

from infomax_jax import data as data_lib

DATA_DIR_ENV = data_lib.DATA_DIR_ENV


def resolve_data_dir(data_dir: Optional[str] = None) -> str:
  """The data folder: ``data_dir`` if given, else ``$INFOMAX_DATA_DIR``.

  The same setting as the image data of ``infomax_jax.data``.

  Args:
    data_dir: a folder holding ``planetoid/`` and/or ``MUTAG/``, or None.

  Returns:
    The folder path.

  Raises:
    ValueError: when neither is set.
  """
  # pylint: disable-next=protected-access
  data_dir = data_lib._resolve_data_dir(data_dir)
  if data_dir is None:
    raise ValueError(
        f'no data folder: pass data_dir=... or set the environment variable '
        f'{DATA_DIR_ENV} to a folder holding planetoid/ind.cora.* and MUTAG/')
  return data_dir


def require_files(paths: Sequence[str], what: str) -> None:
  """Raises FileNotFoundError listing those of ``paths`` that are missing.

  Args:
    paths: the files a loader reads.
    what: the data set, for the message (e.g. 'Planetoid cora').
  """
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise FileNotFoundError(
        f'{what}: {len(missing)} of {len(paths)} expected files are missing: '
        f'{", ".join(missing)} (the folder comes from the data_dir argument or '
        f'${DATA_DIR_ENV})')
