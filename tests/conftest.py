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
