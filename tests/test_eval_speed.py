"""The evaluation's shortcuts keep their results: warm-started probes, and
pixel baselines cached by the content of the data."""

import types

import jax
import numpy as np
import pytest

from infomax_jax import evaluation
from infomax_jax import tschannen
from infomax_jax import twoview


def _blobs(seed, n=400, d=6, classes=3):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(classes, d)) * 2
  y = rng.integers(0, classes, n)
  return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_warm_start_from_the_optimum_stays_there():
  x, y = _blobs(0)
  tx, ty = _blobs(1)
  cold = evaluation.linear_probe(x, y, tx, ty, steps=500)
  assert cold['steps'] < 500   # converged to the gradient tolerance
  start = evaluation.WarmStart()
  first = evaluation.linear_probe(x, y, tx, ty, steps=500, warm_start=start)
  assert first == cold and start.params is not None
  again = evaluation.linear_probe(x, y, tx, ty, steps=3, warm_start=start)
  # From the optimum, L-BFGS stops at once, at the same loss and accuracy.
  assert again['steps'] <= 1
  np.testing.assert_allclose(again['train_loss'], cold['train_loss'], rtol=1e-6)
  assert again['accuracy'] == cold['accuracy']
  # A few steps from zero are far from it: the warm start is what helps.
  short = evaluation.linear_probe(x, y, tx, ty, steps=3)
  assert short['train_loss'] > cold['train_loss'] + 1e-3


def test_warm_start_of_other_shapes_starts_cold():
  x, y = _blobs(0)
  start = evaluation.WarmStart()
  evaluation.linear_probe(x[:, :4], y, x[:, :4], y, steps=50, warm_start=start)
  cold = evaluation.linear_probe(x, y, x, y, steps=50)
  warm = evaluation.linear_probe(x, y, x, y, steps=50, warm_start=start)
  assert warm == cold
  assert jax.tree.map(np.shape, start.params)['params']['Dense_0']['kernel'] == (6, 3)


def test_warm_start_type_is_checked():
  x, y = _blobs(0)
  with pytest.raises(TypeError, match='WarmStart'):
    evaluation.linear_probe(x, y, x, y, warm_start={'params': None})


def _views(images, labels):
  return types.SimpleNamespace(images=images, labels=labels)


def test_pixel_baselines_cached_by_content(tmp_path, monkeypatch):
  calls = []

  def fake(config, train_views, test_views):
    calls.append(1)
    return {'baseline_clean_pixels': float(train_views.images.mean()),
            'baseline_noisy_pixels': 0.5}

  monkeypatch.setattr(twoview, 'pixel_baselines', fake)
  monkeypatch.setenv('INFOMAX_CACHE_DIR', str(tmp_path / 'cache'))
  config = types.SimpleNamespace(get=lambda f, d=None: {'noise_std': 0.05, 'seed': 0,
                                                       'probe_steps': 5}.get(f, d))
  images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
  train, test = _views(images, np.array([0, 1])), _views(images[:1], np.array([1]))
  first = tschannen.baselines(config, train, test, str(tmp_path / 'a'))
  # A new workdir, the same data (a copy): read from the shared cache.
  copy = _views(images.copy(), np.array([0, 1]))
  assert tschannen.baselines(config, copy, test, str(tmp_path / 'b')) == first
  assert len(calls) == 1 and (tmp_path / 'b' / 'baselines.json').is_file()
  # One pixel changed: other content, computed again.
  changed = images.copy()
  changed[0, 0, 0] += 1
  tschannen.baselines(config, _views(changed, np.array([0, 1])), test, str(tmp_path / 'c'))
  assert len(calls) == 2
  # Another seed (the noise draw): computed again.
  config2 = types.SimpleNamespace(get=lambda f, d=None: {'noise_std': 0.05, 'seed': 1,
                                                        'probe_steps': 5}.get(f, d))
  tschannen.baselines(config2, train, test, str(tmp_path / 'd'))
  assert len(calls) == 3
