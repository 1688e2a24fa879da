"""Tests for infomax_jax.data: loaders (npz, IDX, tfds), views, batching."""

import dataclasses
import gzip
import os
import pathlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import data

DEBIAN_FMNIST_TRAIN = os.path.join(data.DEBIAN_FASHION_MNIST_DIR,
                                   'train-images-idx3-ubyte.gz')


def _write_idx(path: pathlib.Path, array: np.ndarray, type_code: int = 0x08,
               magic: bytes | None = None) -> pathlib.Path:
  """Writes an IDX file with a hand-built header (gzipped if path is .gz)."""
  header = magic if magic is not None else bytes(
      [0, 0, type_code, array.ndim])
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  payload = header + array.astype(array.dtype.newbyteorder('>')).tobytes()
  path.parent.mkdir(parents=True, exist_ok=True)
  opener = gzip.open if path.suffix == '.gz' else open
  with opener(path, 'wb') as f:
    f.write(payload)
  return path


def _write_idx_split(folder: pathlib.Path, split: str, images: np.ndarray,
                     labels: np.ndarray, suffix: str = '.gz') -> None:
  prefix = 'train' if split == 'train' else 't10k'
  _write_idx(folder / f'{prefix}-images-idx3-ubyte{suffix}', images)
  _write_idx(folder / f'{prefix}-labels-idx1-ubyte{suffix}', labels)


def _fake_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
          rng.integers(0, 10, (n,), dtype=np.uint8))


@pytest.fixture
def offline(monkeypatch):
  """No INFOMAX_DATA_DIR and no reachable download server."""
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.setattr(data, '_can_reach', lambda host, timeout=3.0: False)


# --- Real MNIST (CI sets INFOMAX_DATA_DIR; a missing file fails). ---


def test_real_mnist_train(mnist_dir):
  images, labels = data.load('mnist', 'train', data_dir=mnist_dir)
  assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (60000,) and labels.dtype == np.int32
  assert labels[0] == 5
  assert set(np.unique(labels)) == set(range(10))
  # Exact moments from the pixel histogram (no 376 MB float64 copy).
  counts = np.bincount(images.ravel(), minlength=256)
  values = np.arange(256) / 255.0
  mean = counts @ values / counts.sum()
  std = np.sqrt(counts @ values**2 / counts.sum() - mean**2)
  np.testing.assert_allclose(mean, 0.13066, atol=1e-5)
  np.testing.assert_allclose(std, 0.30811, atol=1e-5)


def test_real_mnist_test_via_env(mnist_dir, monkeypatch):
  monkeypatch.setenv(data.DATA_DIR_ENV, str(mnist_dir))
  images, labels = data.load('mnist', 'test', source='local')
  assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (10000,) and labels.dtype == np.int32
  assert labels[0] == 7


def test_loads_are_cached_and_read_only(mnist_dir):
  first = data.load('mnist', 'test', data_dir=mnist_dir)
  second = data.load('mnist', 'test', data_dir=str(mnist_dir) + os.sep)
  assert first[0] is second[0] and first[1] is second[1]
  with pytest.raises(ValueError, match='read-only'):
    first[0][0, 0, 0] = 1


def test_real_mnist_dataset_views(mnist_dir):
  views = data.dataset_views('mnist', 'test', mnist_dir)
  images, labels = data.load('mnist', 'test', data_dir=mnist_dir)
  assert views['top'].shape == views['bottom'].shape == (10000, 392)
  assert views['top'].dtype == jnp.float32
  np.testing.assert_allclose(views['top'],
                             images[:, :14].reshape(10000, -1) / 255.0,
                             rtol=1e-6)
  np.testing.assert_allclose(views['bottom'],
                             images[:, 14:].reshape(10000, -1) / 255.0,
                             rtol=1e-6)
  np.testing.assert_array_equal(views['label'], labels)


# --- IDX files. ---


@pytest.mark.parametrize('suffix', ['.gz', ''])
def test_read_idx_hand_built(tmp_path, suffix):
  images, labels = _fake_digits(3)
  np.testing.assert_array_equal(
      data.read_idx(_write_idx(tmp_path / f'x{suffix}', images)), images)
  np.testing.assert_array_equal(
      data.read_idx(_write_idx(tmp_path / f'y{suffix}', labels)), labels)
  ints = np.array([[1, -2], [70000, 3]], np.int32)  # big-endian on disk
  np.testing.assert_array_equal(
      data.read_idx(_write_idx(tmp_path / f'i{suffix}', ints, 0x0C)), ints)


def test_load_idx_from_named_subfolder(tmp_path):
  images, labels = _fake_digits(5)
  _write_idx_split(tmp_path / 'mnist', 'train', images, labels)
  got_images, got_labels = data.load('mnist', 'train', data_dir=tmp_path,
                                     source='local')
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  assert got_labels.dtype == np.int32


def test_load_idx_flat_layout_uncompressed(tmp_path):
  images, labels = _fake_digits(4, seed=1)
  _write_idx_split(tmp_path, 'test', images, labels, suffix='')
  got_images, got_labels = data.load('fashion_mnist', 'test',
                                     data_dir=tmp_path, source='local')
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)


def test_npz_is_preferred_and_cifar_labels_flattened(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {f'x_{s}': rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            for s, n in (('train', 6), ('test', 2))}
  arrays.update({f'y_{s}': rng.integers(0, 10, (n, 1), dtype=np.uint8)
                 for s, n in (('train', 6), ('test', 2))})
  np.savez(tmp_path / 'cifar10.npz', **arrays)
  images, labels = data.load('cifar10', 'train', data_dir=tmp_path)
  np.testing.assert_array_equal(images, arrays['x_train'])
  np.testing.assert_array_equal(labels, arrays['y_train'][:, 0])


def test_idx_bad_magic(tmp_path):
  images, labels = _fake_digits(2)
  bad = _write_idx(tmp_path / 'bad.gz', images, magic=b'\x12\x34\x08\x03')
  with pytest.raises(ValueError, match='bad IDX magic number 0x12340803'):
    data.read_idx(bad)
  # A labels file where the images belong: valid IDX, wrong magic for images.
  _write_idx(tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz', labels)
  _write_idx(tmp_path / 'mnist' / 'train-labels-idx1-ubyte.gz', labels)
  with pytest.raises(ValueError, match='expected IDX magic number 0x00000803, '
                     'got 0x00000801'):
    data.load('mnist', 'train', data_dir=tmp_path, source='local')


def test_idx_size_and_shape_errors(tmp_path):
  images, labels = _fake_digits(3)
  truncated = tmp_path / 'truncated'
  _write_idx(truncated, images)
  truncated.write_bytes(truncated.read_bytes()[:-5])
  with pytest.raises(ValueError, match=r'shape \(3, 28, 28\)'):
    data.read_idx(truncated)
  _write_idx_split(tmp_path / 'a' / 'mnist', 'train', images[:, :27], labels)
  with pytest.raises(ValueError, match=r'expected images of shape \(N, 28, '
                     r'28\), got \(3, 27, 28\)'):
    data.load('mnist', 'train', data_dir=tmp_path / 'a', source='local')
  _write_idx_split(tmp_path / 'b' / 'mnist', 'train', images, labels[:2])
  with pytest.raises(ValueError, match=r'labels of shape \(3,\)'):
    data.load('mnist', 'train', data_dir=tmp_path / 'b', source='local')


@pytest.mark.skipif(not os.path.exists(DEBIAN_FMNIST_TRAIN),
                    reason='Debian dataset-fashion-mnist is not installed')
def test_debian_fashion_mnist(tmp_path, offline):
  del offline
  images, labels = data.load('fashion_mnist', 'train', data_dir=tmp_path)
  assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (60000,) and labels[0] == 9  # ankle boot
  assert np.bincount(labels).tolist() == [6000] * 10


# --- tensorflow_datasets (mocked: no network, no TensorFlow). ---


@pytest.mark.parametrize('name,shape', [('mnist', (28, 28)),
                                        ('cifar10', (32, 32, 3))])
def test_tfds_data_source_mocked(tmp_path, name, shape):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=5):
    images, labels = data.load(name, 'train', data_dir=tmp_path,
                               source='tfds')
  assert images.shape == (5,) + shape and images.dtype == np.uint8
  assert labels.shape == (5,) and labels.dtype == np.int32
  assert labels.min() >= 0 and labels.max() < 10
  top, bottom = data.top_bottom_views(images)
  half = shape[0] // 2 * int(np.prod(shape[1:]))
  assert top.shape == bottom.shape == (5, half)


# --- Errors. ---


def test_not_found_names_every_place(tmp_path, offline):
  del offline
  with pytest.raises(FileNotFoundError) as info:
    data.load('mnist', 'train', data_dir=tmp_path)
  message = str(info.value)
  for place in (tmp_path / 'mnist.npz', tmp_path / 'mnist', tmp_path):
    assert str(place) in message
  assert 'tfds' in message and 'storage.googleapis.com' in message
  assert data.DATA_DIR_ENV in message


def test_not_found_fashion_mnist_mentions_debian(tmp_path, offline,
                                                 monkeypatch):
  del offline
  spec = dataclasses.replace(data.DATASETS['fashion_mnist'],
                             system_dirs=(str(tmp_path / 'debian'),))
  monkeypatch.setitem(data.DATASETS, 'fashion_mnist', spec)
  with pytest.raises(FileNotFoundError) as info:
    data.load('fashion_mnist', 'test', data_dir=tmp_path, source='local')
  message = str(info.value)
  assert str(tmp_path / 'fashion-mnist') in message
  assert str(tmp_path / 'debian') in message
  assert 'apt-get install dataset-fashion-mnist' in message


def test_not_found_without_data_dir(offline):
  del offline
  with pytest.raises(FileNotFoundError, match=data.DATA_DIR_ENV + ' is unset'):
    data.load('mnist', 'test', source='local')


@pytest.mark.parametrize('kwargs,match', [
    (dict(name='svhn', split='train'), "unknown data set 'svhn'; valid data "
     'sets are: cifar10, fashion_mnist, mnist'),
    (dict(name='mnist', split='valid'), "unknown split 'valid'"),
    (dict(name='mnist', split='train', source='web'),
     "unknown data source 'web'"),
])
def test_bad_names(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.load(**kwargs)


# --- Views and noise. ---


def test_top_bottom_views_rows():
  # Pixel value = 9 * row, so each flattened half reveals which rows it holds.
  rows = np.arange(28, dtype=np.uint8) * 9
  images = np.broadcast_to(rows[None, :, None], (2, 28, 28)).copy()
  top, bottom = data.top_bottom_views(images)
  assert top.shape == bottom.shape == (2, 392) and top.dtype == jnp.float32
  np.testing.assert_allclose(top.reshape(2, 14, 28)[0, :, 0], rows[:14] / 255,
                             rtol=1e-6)
  np.testing.assert_allclose(bottom.reshape(2, 14, 28)[1, :, 5],
                             rows[14:] / 255, rtol=1e-6)
  # Flat input, float input and jit give the same halves.
  for args, kwargs in (((images.reshape(2, 784),), {}),
                       ((images.astype(np.float32),), {'pixel_max': 255.0}),
                       ((images / 255.0,), {})):
    flat_top, flat_bottom = data.top_bottom_views(*args, **kwargs)
    np.testing.assert_allclose(flat_top, top, rtol=1e-6)
    np.testing.assert_allclose(flat_bottom, bottom, rtol=1e-6)
  jit_top, _ = jax.jit(data.top_bottom_views)(images)
  np.testing.assert_array_equal(jit_top, top)


def test_top_bottom_views_color():
  images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3),
                                             dtype=np.uint8)
  top, bottom = data.top_bottom_views(images)
  assert top.shape == bottom.shape == (3, 1536)
  np.testing.assert_allclose(top, images[:, :16].reshape(3, -1) / 255,
                             rtol=1e-6)
  flat_top, _ = data.top_bottom_views(images.reshape(3, 3072))
  np.testing.assert_array_equal(flat_top, top)


@pytest.mark.parametrize('shape,match', [
    ((2, 27, 28), 'height must be even'),
    ((2, 100), 'flat images must have 784 or 3072'),
    ((784,), r'expected images of shape \(B, H, W\)'),
])
def test_top_bottom_views_bad_shapes(shape, match):
  with pytest.raises(ValueError, match=match):
    data.top_bottom_views(np.zeros(shape, np.uint8))


def test_add_noise():
  key = jax.random.PRNGKey(0)
  x = jnp.zeros((200, 392))
  noisy = data.add_noise(key, x, 0.05)
  assert noisy.shape == x.shape and noisy.dtype == x.dtype
  np.testing.assert_allclose(jnp.std(noisy), 0.05, rtol=0.02)
  np.testing.assert_array_equal(noisy, data.add_noise(key, x, 0.05))
  with pytest.raises(TypeError, match='floating'):
    data.add_noise(key, jnp.zeros((2, 2), jnp.uint8), 0.1)
  with pytest.raises(ValueError, match='std must be >= 0'):
    data.add_noise(key, x, -1.0)


# --- Batching. ---


def test_batch_indices():
  key = jax.random.PRNGKey(3)
  idx = data.batch_indices(key, 1000, 128)
  assert idx.shape == (128,) and idx.dtype == jnp.int32
  assert len(set(idx.tolist())) == 128
  assert 0 <= int(idx.min()) and int(idx.max()) < 1000
  np.testing.assert_array_equal(idx, data.batch_indices(key, 1000, 128))
  other = data.batch_indices(jax.random.fold_in(key, 1), 1000, 128)
  assert not np.array_equal(idx, other)
  everything = data.batch_indices(key, 50, 50)
  np.testing.assert_array_equal(np.sort(everything), np.arange(50))


def test_batch_indices_inside_jit_with_traced_step():
  dataset = jnp.arange(100) * 10

  @jax.jit
  def step_batch(key, step):
    idx = data.batch_indices(jax.random.fold_in(key, step), 100, 8)
    return dataset[idx]

  key = jax.random.PRNGKey(0)
  batch = step_batch(key, 7)
  np.testing.assert_array_equal(batch, step_batch(key, jnp.int32(7)))
  np.testing.assert_array_equal(
      batch, dataset[data.batch_indices(jax.random.fold_in(key, 7), 100, 8)])


@pytest.mark.parametrize('n,b', [(10, 11), (10, 0), (0, 1)])
def test_batch_indices_bad_sizes(n, b):
  with pytest.raises(ValueError, match='batch_size|num_examples'):
    data.batch_indices(jax.random.PRNGKey(0), n, b)


def test_epoch_permutation():
  key = jax.random.PRNGKey(1)
  perm = data.epoch_permutation(key, 30)
  assert perm.dtype == jnp.int32
  np.testing.assert_array_equal(np.sort(perm), np.arange(30))
  np.testing.assert_array_equal(perm, data.epoch_permutation(key, 30))
  assert not np.array_equal(perm, np.arange(30))


@pytest.mark.parametrize('damage', ['truncate', 'garble'])
def test_damaged_npz_error_names_the_file(tmp_path, damage):
  images = np.zeros((4, 28, 28), np.uint8)
  labels = np.arange(4, dtype=np.uint8)
  path = tmp_path / 'mnist.npz'
  np.savez(path, x_train=images, y_train=labels, x_test=images, y_test=labels)
  raw = path.read_bytes()
  if damage == 'truncate':
    path.write_bytes(raw[:len(raw) // 2])
  else:
    path.write_bytes(raw[:40] + bytes(200) + raw[240:])
  data._load_npz.cache_clear()
  with pytest.raises(ValueError, match=f'{path}: '):
    data.load('mnist', 'train', data_dir=str(tmp_path), source='local')


def test_truncated_idx_gz_error_names_the_file(tmp_path):
  path = tmp_path / 'x.idx.gz'
  with gzip.open(path, 'wb') as f:
    f.write(b'\x00\x00\x08\x01' + (1000).to_bytes(4, 'big') + bytes(1000))
  raw = path.read_bytes()
  path.write_bytes(raw[:len(raw) - 12])
  with pytest.raises(ValueError, match=f'{path}: not a readable IDX file'):
    data.read_idx(path)
