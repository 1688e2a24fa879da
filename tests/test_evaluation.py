"""Tests for infomax_jax.evaluation: accuracy, agreement with sklearn, errors."""

import warnings
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import data
from infomax_jax import evaluation


def _blobs(seed: int = 0) -> tuple[np.ndarray, ...]:
  """Two well-separated Gaussian blobs in 2-D: (x, y, test_x, test_y)."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, 600)
  x = rng.normal(size=(600, 2)) * 0.5 + np.where(y[:, None] == 1, 3.0, -3.0)
  return x[:400], y[:400], x[400:], y[400:]


def _xor(seed: int = 1) -> tuple[np.ndarray, ...]:
  """XOR of the signs of two coordinates: not linearly separable."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (600, 2))
  x += 0.2 * np.sign(x)  # a margin around the axes
  y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int32)
  return x[:400], y[:400], x[400:], y[400:]


def test_linear_probe_separable_and_deterministic():
  result = evaluation.linear_probe(*_blobs())
  assert result['accuracy'] == 1.0 and result['train_accuracy'] == 1.0
  assert 1 <= result['steps'] <= evaluation.DEFAULT_STEPS
  assert result == evaluation.linear_probe(*_blobs())
  # Same shapes and settings: the compiled program is reused, and a linear
  # classifier cannot solve XOR.
  assert evaluation.linear_probe(*_xor())['accuracy'] < 0.75


@pytest.mark.slow
def test_mlp_probe_solves_xor():
  result = evaluation.mlp_probe(*_xor(), hidden_size=32, steps=200)
  assert result['accuracy'] >= 0.97 and result['train_accuracy'] >= 0.97


def test_minibatch_adam_deterministic_in_seed():
  kwargs = dict(batch_size=32, steps=300, learning_rate=0.05)
  result = evaluation.linear_probe(*_blobs(), seed=3, **kwargs)
  assert result['accuracy'] == 1.0 and result['steps'] == 300
  assert result == evaluation.linear_probe(*_blobs(), seed=3, **kwargs)


def test_bad_inputs():
  x, y, tx, ty = _blobs()
  cases = [
      ((x, y[:-1], tx, ty), {}, ValueError,
       r'train_y must have shape \(400,\)'),
      ((x[:, :, None], y, tx, ty), {}, ValueError,
       r'train_x must have shape \(num_examples, num_features\), got shape '
       r'\(400, 2, 1\)'),
      ((x, y, tx[:, :1], ty), {}, ValueError, 'same number of features'),
      ((x, y[:, None], tx, ty), {}, ValueError, 'train_y must have shape'),
      ((x, y.astype(float), tx, ty), {}, TypeError, 'integer class labels'),
      ((x, y, np.full_like(tx, np.nan), ty), {}, ValueError, 'NaN'),
      ((x, y, tx, ty), {'num_classes': 1}, ValueError, 'num_classes'),
      ((x, y + 5, tx, ty), {'num_classes': 3}, ValueError,
       'labels must be < num_classes=3'),
      ((x, y, tx, ty), {'learning_rate': 0.1}, ValueError, 'mini-batch Adam'),
      ((x, y, tx, ty), {'batch_size': 401}, ValueError,
       r'batch_size must be an int in \[1, 400\]'),
      ((x, y, tx, ty), {'steps': 0}, ValueError, 'steps must be a positive'),
  ]
  for args, kwargs, error, match in cases:
    with pytest.raises(error, match=match):
      evaluation.linear_probe(*args, **kwargs)
  with pytest.raises(ValueError, match='hidden_size'):
    evaluation.mlp_probe(x, y, tx, ty, hidden_size=0)


@pytest.mark.slow
def test_mnist_top_half_pixel_baseline_matches_sklearn(mnist_dir):
  """Paper setting: LogisticRegression(C=10) after MinMaxScaler, full data."""
  linear_model = pytest.importorskip('sklearn.linear_model')
  preprocessing = pytest.importorskip('sklearn.preprocessing')
  threadpoolctl = pytest.importorskip('threadpoolctl')
  train = data.dataset_views('mnist', 'train', mnist_dir)
  test = data.dataset_views('mnist', 'test', mnist_dir)
  ours = evaluation.linear_probe(train['top'], train['label'], test['top'],
                             test['label'])
  assert 0.84 <= ours['accuracy'] <= 0.86

  scaler = preprocessing.MinMaxScaler().fit(np.asarray(train['top'],
                                                       np.float64))
  # One thread: spinning BLAS/OpenMP threads cost far more than they save on
  # a small, shared CI machine. max_iter=100 is scikit-learn's default.
  with threadpoolctl.threadpool_limits(1), warnings.catch_warnings():
    warnings.simplefilter('ignore')  # ConvergenceWarning at max_iter
    classifier = linear_model.LogisticRegression(C=10, max_iter=100).fit(
        scaler.transform(np.asarray(train['top'], np.float64)),
        np.asarray(train['label']))
  reference = classifier.score(
      scaler.transform(np.asarray(test['top'], np.float64)),
      np.asarray(test['label']))
  assert abs(ours['accuracy'] - reference) <= 0.005, (ours, reference)

  # Tschannen et al.'s baseline adds N(0, 0.05^2) pixel noise: about 0.83-0.85.
  # steps=50 reuses the compiled program (steps is traced) at half the cost.
  train_key, test_key = jax.random.split(jax.random.PRNGKey(0))
  noisy = evaluation.linear_probe(
      data.add_noise(train_key, train['top'], 0.05), train['label'],
      data.add_noise(test_key, test['top'], 0.05), test['label'], steps=50)
  assert 0.83 <= noisy['accuracy'] <= 0.85


@pytest.mark.slow
def test_distances_to_uniform_against_itself_and_a_point_mass():
  kwargs = dict(hidden_size=32, steps=300, batch_size=256, learning_rate=1e-3)
  # Uniform samples against the uniform: W1 ~ 0, energy ~ 0, C2ST at chance.
  same = jax.random.uniform(jax.random.PRNGKey(3), (4000, 4))
  m = evaluation.distances_to_uniform(same[:2000], same[2000:], seed=4, **kwargs)
  assert m['w1_prior'] < 0.02 and abs(m['energy_prior']) < 0.02
  assert abs(m['c2st_accuracy'] - 0.5) < 0.05
  # All mass at 1/2: W1 = 1/4 exactly, the C2ST separates.
  point = jnp.full((2000, 4), 0.5)
  m = evaluation.distances_to_uniform(point, point, seed=4, **kwargs)
  np.testing.assert_allclose(m['w1_prior'], 0.25, rtol=1e-4)   # float32 sums
  assert m['energy_prior'] > 0.3 and m['c2st_accuracy'] > 0.9


def test_eval_keys_policy():
  # Same purpose, same keys; other purpose or seed, other keys.
  a = evaluation.eval_keys(0, 'mi_test', 3)
  np.testing.assert_array_equal(a, evaluation.eval_keys(0, 'mi_test', 3))
  assert not np.array_equal(a, evaluation.eval_keys(0, 'mi_train', 3))
  assert not np.array_equal(a, evaluation.eval_keys(1, 'mi_test', 3))
  np.testing.assert_array_equal(
      evaluation.eval_key(5, 'x'),
      jax.random.fold_in(jax.random.PRNGKey(5), zlib.crc32(b'x') % 2**31))
  with pytest.raises(ValueError, match='purpose'):
    evaluation.eval_key(0, '')
  with pytest.raises(ValueError, match='at least one'):
    evaluation.eval_keys(0, 'x', 0)


def test_map_batches_pads_the_last_batch_and_drops_the_padding():
  x = jnp.arange(7 * 3, dtype=jnp.float32).reshape(7, 3)
  calls = []

  def fn(batch):
    calls.append(batch.shape)
    return {'sum': batch.sum(axis=1), 'first': batch[:, 0]}

  out = evaluation.map_batches(fn, x, batch_size=3)
  # 7 rows in batches of 3: three equal calls (one compile), the last padded.
  assert calls == [(3, 3)] * 3
  np.testing.assert_array_equal(out['sum'], np.arange(21).reshape(7, 3).sum(1))
  np.testing.assert_array_equal(out['first'], np.arange(0, 21, 3))
  assert evaluation.map_batches(fn, x, batch_size=100)['sum'].shape == (7,)
  with pytest.raises(ValueError, match='at least one example'):
    evaluation.map_batches(fn, x[:0])
