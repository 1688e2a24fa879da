"""Smoke test of the Gaussian benchmark (experiments/bounds.py), tiny sizes."""

import csv
import math
import os

import numpy as np
import pytest

from experiments import bounds as experiment
from experiments.configs import bounds as bounds_config


def _tiny_config(critics=('separable', 'concat'), estimators=('jsd',)):
  config = bounds_config.get_config('quick')
  config.critics = critics
  config.estimators = estimators
  config.levels = (1.0, 3.0)
  config.steps_per_level = 20
  config.summary_window = 10
  config.summary_batches = 5
  config.batch_size = 8
  config.dim = 3
  config.hidden = (16,)
  config.embed_dim = 4
  config.baseline_hidden = (8,)
  return config


def _rows(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_configs_name_every_estimator():
  assert set(bounds_config.ALL_ESTIMATORS) == set(experiment.ESTIMATORS)
  assert bounds_config.get_config().estimators == bounds_config.ALL_ESTIMATORS
  with pytest.raises(ValueError, match="unknown config variant 'fast'"):
    bounds_config.get_config('fast')


def test_unknown_estimator_raises_listing_valid_names(tmp_path):
  config = _tiny_config(estimators=('infonce', 'cpc'))
  with pytest.raises(ValueError, match="unknown estimator 'cpc'.*dv.*infonce"):
    experiment.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'metrics.csv')


def test_quick_run_writes_metrics_summary_and_plot(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  config = _tiny_config()
  summary = experiment.run(config, workdir)

  metrics = _rows(os.path.join(workdir, 'metrics.csv'))
  assert len(metrics) == 2 * 40
  assert set(metrics[0]) == set(experiment.METRIC_FIELDS)
  for row in metrics:
    assert math.isfinite(float(row['estimate']))
  true_mi = [float(r['true_mi']) for r in metrics[:40]]
  assert true_mi == [1.0] * 20 + [3.0] * 20

  assert len(summary) == 2 * 2
  table = _rows(os.path.join(workdir, 'summary.csv'))
  assert len(table) == len(summary)
  for row in table:
    assert float(row['std']) >= 0 and float(row['se']) >= 0
    assert math.isfinite(float(row['mean']))
  md = open(os.path.join(workdir, 'summary.md')).read()
  assert '### separable critic' in md and '### concat critic' in md
  assert '| jsd |' in md
  with open(os.path.join(workdir, 'bounds.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert len(_rows(os.path.join(workdir, 'timings.csv'))) == 2

  # A second run skips the complete pair and trains only the new one.
  config2 = _tiny_config(critics=('separable',), estimators=('jsd', 'infonce'))
  summary2 = experiment.run(config2, workdir)
  metrics = _rows(os.path.join(workdir, 'metrics.csv'))
  assert len(metrics) == 3 * 40
  assert len(_rows(os.path.join(workdir, 'timings.csv'))) == 3
  for row in metrics[-40:]:
    assert row['estimator'] == 'infonce'
    assert float(row['estimate']) <= math.log(8) + 1e-5   # log K ceiling
    assert float(row['estimate']) == float(row['objective'])
  assert {(r['critic'], r['estimator']) for r in summary2} == {
      ('separable', 'jsd'), ('concat', 'jsd'), ('separable', 'infonce')}

  # An interrupted pair (missing rows) is dropped and trained again.
  path = os.path.join(workdir, 'metrics.csv')
  lines = open(path).read().splitlines(keepends=True)
  with open(path, 'w') as f:
    f.writelines(lines[:-3])
  trained = []

  def fake_train(critic_name, name, config, workdir, mesh=None):
    del workdir, mesh
    trained.append((critic_name, name))
    n = len(config.levels) * config.steps_per_level
    return np.zeros(n), np.zeros(n), {'compile_s': 0.0, 'run_s': 1.0}

  monkeypatch.setattr(experiment, 'train_combo', fake_train)
  experiment.run(config2, workdir)
  assert trained == [('separable', 'infonce')]
  assert len(_rows(path)) == 3 * 40


def test_summary_uses_batch_means_standard_error():
  config = _tiny_config()
  config.levels = (1.0,)
  config.steps_per_level = 30
  config.summary_window, config.summary_batches = 20, 4
  est = np.concatenate([np.full(10, 99.0), np.repeat([1.0, 2.0, 3.0, 4.0], 5)])
  (row,) = experiment.summarize(est, config)
  assert row['mean'] == pytest.approx(2.5)
  assert row['se'] == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
  assert row['std'] == pytest.approx(np.std(est[10:], ddof=1))
  assert row['bias_over_se'] == pytest.approx(1.5 / row['se'])
