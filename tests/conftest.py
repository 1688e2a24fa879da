"""Shared pytest fixtures."""

import os
import pathlib
import shutil
import tempfile

import jax
import pytest

from infomax_jax import data

# XLA compilation cache shared by the whole test session: the xdist workers and
# the tests' subprocesses inherit the folder through the environment, so a
# tiny run's programs compile once per session, not once per test (most of
# the suite's time is compilation of small programs). Off with
# INFOMAX_TEST_COMPILATION_CACHE=0; an explicit JAX_COMPILATION_CACHE_DIR is
# used as it is and never deleted.
_CACHE_ENV = 'JAX_COMPILATION_CACHE_DIR'
_created_cache = None


def pytest_configure(config):
  del config
  global _created_cache
  if os.environ.get('INFOMAX_TEST_COMPILATION_CACHE', '1') == '0':
    return
  if _CACHE_ENV not in os.environ:   # the controller (or a plain run) creates it
    _created_cache = tempfile.mkdtemp(prefix='infomax_jax_xla_cache_')
    os.environ[_CACHE_ENV] = _created_cache
    os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  # jax is already imported: its config read the environment before this hook.
  jax.config.update('jax_compilation_cache_dir', os.environ[_CACHE_ENV])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)


def pytest_unconfigure(config):
  del config
  if _created_cache is not None:
    shutil.rmtree(_created_cache, ignore_errors=True)


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
