"""Tests of infomax_jax.graphs.evaluation: DGI's probe, InfoGraph's SVM CV."""

import numpy as np
import pytest

from infomax_jax import graphs


def _clusters(num_classes, per_class, dim, spread, seed, sample=0):
  """Samples ``sample`` of Gaussian clusters around far-apart means; (x, y)."""
  means = np.random.default_rng(seed).normal(size=(num_classes, dim)) * 5.0
  y = np.repeat(np.arange(num_classes), per_class)
  noise = np.random.default_rng([seed, sample]).normal(size=(y.size, dim))
  x = means[y] + spread * noise
  return x.astype(np.float32), y


def test_logreg_probe_separates_clusters_in_every_run():
  x, y = _clusters(3, 40, 8, spread=0.5, seed=0)
  test_x, test_y = _clusters(3, 30, 8, spread=0.5, seed=0, sample=1)
  acc = graphs.logreg_probe(x, y, test_x, test_y, num_classes=3, num_runs=4,
                            seed=1, epochs=100, learning_rate=0.05)
  assert acc.shape == (4,)
  np.testing.assert_array_equal(acc, 1.0)          # chance: 1/3


def test_logreg_probe_runs_differ_by_initialisation_only():
  x, y = _clusters(4, 10, 6, spread=3.0, seed=2)
  kw = dict(num_classes=4, num_runs=6, epochs=0)
  # No training steps: each run scores its own Glorot initialisation, so the
  # runs differ from each other, and a seed gives the same runs again.
  first = graphs.logreg_probe(x, y, x, y, seed=3, **kw)
  np.testing.assert_array_equal(first, graphs.logreg_probe(x, y, x, y, seed=3,
                                                           **kw))
  assert np.unique(first).size > 1
  with pytest.raises(ValueError, match=r'labels must have shapes \(40,\)'):
    graphs.logreg_probe(x, y[:-1], x, y, seed=3, **kw)


def test_svm_cross_validation_on_separable_and_on_shuffled_labels():
  x, y = _clusters(2, 30, 4, spread=0.5, seed=4)
  cv = dict(folds=5, inner_folds=3, cs=(0.1, 10.0), seed=0)
  acc, cs = graphs.svm_cross_validation(x, y, **cv)
  np.testing.assert_array_equal(acc, np.ones(5))
  assert len(cs) == 5 and set(cs) <= {0.1, 10.0}
  # Labels independent of the features: chance level, far below 1.
  shuffled = np.random.default_rng(5).permutation(y)
  acc, _ = graphs.svm_cross_validation(x, shuffled, **cv)
  assert acc.mean() < 0.8
