"""Shared pytest fixtures."""

import os
import pathlib

import pytest

from infomax_jax import data


@pytest.fixture(scope='session')
def mnist_dir() -> pathlib.Path:
  """The real-data folder ($INFOMAX_DATA_DIR) holding mnist.npz.

  Skips only when INFOMAX_DATA_DIR is unset; when it is set (as in CI) a
  missing mnist.npz is a failure, so real-data tests cannot silently vanish.
  """
  if data.DATA_DIR_ENV not in os.environ:
    pytest.skip(f'{data.DATA_DIR_ENV} is unset; point it at a folder holding '
                'mnist.npz to run the real-MNIST tests')
  path = pathlib.Path(os.environ[data.DATA_DIR_ENV])
  if not (path / 'mnist.npz').is_file():
    pytest.fail(f'{data.DATA_DIR_ENV}={os.environ[data.DATA_DIR_ENV]!r} is set '
                f'but {path / "mnist.npz"} does not exist')
  return path


@pytest.fixture(autouse=True, scope='session')
def _private_cache_dir(tmp_path_factory):
  """Results cached by content (pixel baselines) go to a fresh folder per
  session, never to the user's ~/.cache."""
  old = os.environ.get('INFOMAX_CACHE_DIR')
  os.environ['INFOMAX_CACHE_DIR'] = str(tmp_path_factory.mktemp('cache'))
  yield
  if old is None:
    os.environ.pop('INFOMAX_CACHE_DIR', None)
  else:
    os.environ['INFOMAX_CACHE_DIR'] = old
