"""Tests of the Gaussian benchmark (experiments/bounds.py) at tiny sizes."""

import math
import os

import jax
import numpy as np
import pytest

from experiments import bounds as experiment
from experiments.configs import bounds as bounds_config
from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import distributions
from infomax_jax import runs
from infomax_jax import train


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


def test_configs_name_registry_bounds_with_valid_hyperparameters():
  assert bounds_config.get_config().estimators == bounds_config.ALL_ESTIMATORS
  for name in bounds_config.ALL_ESTIMATORS:
    spec, hyper = experiment.estimator(name)
    assert spec.options(hyper) == {**spec.defaults, **hyper}   # keys are valid
    assert spec.mi_estimate
  with pytest.raises(ValueError, match="unknown config variant 'fast'"):
    bounds_config.get_config('fast')


@pytest.mark.parametrize('variant', ['default', 'quick'])
def test_the_entry_point_accepts_the_configs(variant):
  runs.validate(bounds_config.get_config(variant))   # what runs.main checks first


def test_staircase_sampler_has_the_requested_mi():
  d, mi = 3, 1.5
  rho = distributions.mi_to_rho(mi, d)
  assert -0.5 * d * math.log(1.0 - rho**2) == pytest.approx(mi, rel=1e-12)
  # The same distribution as the suite's Gaussian task (closed-form MI).
  task = distributions.gaussian_sparse(d, d, d, rho)
  assert task.mutual_information == pytest.approx(mi, rel=1e-9)
  x, y = distributions.sample_correlated_gaussian(jax.random.key(0), rho, 20_000, d)
  corr = np.corrcoef(np.asarray(x).T, np.asarray(y).T)
  np.testing.assert_allclose(np.diag(corr[:d, d:]), rho, atol=0.02)
  np.testing.assert_allclose(corr[:d, :d], np.eye(d), atol=0.02)
  with pytest.raises(ValueError, match='need mi >= 0'):
    distributions.mi_to_rho(-1.0, d)


def test_unknown_estimator_raises_listing_valid_names(tmp_path):
  config = _tiny_config(estimators=('infonce', 'cpc'))
  with pytest.raises(ValueError, match="unknown estimator 'cpc'.*dv.*infonce"):
    experiment.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'metrics.csv')


@pytest.mark.slow
def test_a_step_trains_the_objective_and_reports_the_registry_estimate():
  # jsd: the objective is the JSD of the scores, the curve NWJ(scores + 1).
  config = _tiny_config(critics=('concat',))
  task = experiment.make_task('concat', 'jsd', config)
  tx = train.make_optimizer(config)
  state = train.init_state(task, config, tx)
  batch = task.sample(task.data, jax.random.key(1), 0)
  new_state, metrics = jax.jit(
      lambda st, b: task.update(st, b, jax.random.key(2), tx))(state, batch)
  scores = critics.make_critic('concat', hidden=(16,)).apply(
      state.params['critic'], batch['x'], batch['y'])
  np.testing.assert_allclose(metrics['objective'], bounds.jsd(scores), rtol=1e-5)
  np.testing.assert_allclose(metrics['estimate'], bounds.nwj(scores + 1.0),
                             rtol=1e-5)
  # The step's values are kept at its index of the per-step curves.
  assert new_state.aux['estimate'][0] == metrics['estimate']
  assert new_state.aux['objective'][0] == metrics['objective']
  assert not np.any(new_state.aux['estimate'][1:])


@pytest.mark.slow
def test_quick_run_writes_metrics_summary_and_plot(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  config = _tiny_config()
  summary = experiment.run(config, workdir)

  metrics = runs.read_csv(os.path.join(workdir, 'metrics.csv'))
  assert len(metrics) == 2 * 40
  assert set(metrics[0]) == set(experiment.METRIC_FIELDS)
  for row in metrics:
    assert math.isfinite(float(row['estimate']))
  true_mi = [float(r['true_mi']) for r in metrics[:40]]
  assert true_mi == [1.0] * 20 + [3.0] * 20

  assert len(summary) == 2 * 2
  table = runs.read_csv(os.path.join(workdir, 'summary.csv'))
  assert len(table) == len(summary)
  for row in table:
    assert float(row['std']) >= 0 and float(row['se']) >= 0
    assert math.isfinite(float(row['mean']))
  md = open(os.path.join(workdir, 'summary.md')).read()
  assert '### separable critic' in md and '### concat critic' in md
  assert '| jsd |' in md and '### timing' in md
  with open(os.path.join(workdir, 'bounds.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  timing = runs.read_timing(os.path.join(workdir, 'runs', 'concat_jsd'))
  assert timing['train']['steps'] == 40

  # A second run skips the complete pair and trains only the new one.
  config2 = _tiny_config(critics=('separable',), estimators=('jsd', 'infonce'))
  summary2 = experiment.run(config2, workdir)
  metrics = runs.read_csv(os.path.join(workdir, 'metrics.csv'))
  assert len(metrics) == 3 * 40
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
    return np.zeros(n), np.zeros(n), {}

  monkeypatch.setattr(experiment, 'train_combo', fake_train)
  experiment.run(config2, workdir)
  assert trained == [('separable', 'infonce')]
  assert len(runs.read_csv(path)) == 3 * 40


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
