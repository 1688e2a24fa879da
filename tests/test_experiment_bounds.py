"""Tests of the Gaussian benchmark (experiments/bounds.py) at tiny sizes."""

import math
import os

import jax
import numpy as np
import pytest
from scipy import stats

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


def _seeds_config(num_seeds, seed=3):
  """A tiny staircase (2 levels of 10 steps) of MINE, whose moving average
  rides in ``aux`` beside the curves, from a seed other than 0."""
  config = _tiny_config(critics=('separable',), estimators=('mine',))
  config.steps_per_level, config.summary_window = 10, 10
  config.seed, config.num_seeds = seed, num_seeds
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
  assert row['seeds'] == 1 and row['bias'] == pytest.approx(1.5)
  assert math.isnan(row['ci95']) and math.isnan(row['seed_std'])


def test_summary_over_seeds_is_a_student_t_interval_of_the_window_means():
  config = _tiny_config()
  config.levels = (1.0, 3.0)
  config.steps_per_level = 30
  config.summary_window, config.summary_batches = 20, 4
  rng = np.random.default_rng(0)
  est = rng.normal(size=(3, 60)) + np.array([[0.5], [1.0], [2.5]])
  rows = experiment.summarize(est, config)
  assert len(rows) == 2
  for level, (row, mi) in enumerate(zip(rows, (1.0, 3.0))):
    lo = level * 30 + 10                       # the level's last 20 steps
    means, ses, variances = [], [], []
    for r in range(3):
      window = est[r, lo:lo + 20]
      means.append(sum(window) / 20)
      blocks = [window[5 * j:5 * j + 5].mean() for j in range(4)]
      ses.append(np.std(blocks, ddof=1) / math.sqrt(4))
      variances.append(np.var(window, ddof=1))
    m = sum(means) / 3
    sd = math.sqrt(sum((x - m)**2 for x in means) / 2)
    half = stats.t.ppf(0.975, df=2) * sd / math.sqrt(3)
    assert half == pytest.approx(4.303 * sd / math.sqrt(3), rel=1e-3)
    se = math.sqrt(sum(x**2 for x in ses)) / 3
    assert row['mean'] == pytest.approx(m, rel=1e-12)
    assert row['ci95'] == pytest.approx(half, rel=1e-9)
    assert row['seed_std'] == pytest.approx(sd, rel=1e-9)
    assert row['bias'] == pytest.approx(m - mi, rel=1e-12)
    assert row['se'] == pytest.approx(se, rel=1e-9)
    assert row['std'] == pytest.approx(math.sqrt(np.mean(variances)), rel=1e-9)
    assert row['bias_over_se'] == pytest.approx((m - mi) / se, rel=1e-9)
    assert (row['n'], row['seeds'], row['true_mi']) == (20, 3, mi)


def test_metrics_round_trip_per_seed_and_old_files_read_as_config_seed(tmp_path):
  path = str(tmp_path / 'metrics.csv')
  config = _tiny_config()          # 2 levels x 20 steps
  truth = np.repeat([1.0, 3.0], 20)
  est = np.arange(80.0).reshape(2, 40) / 7
  config.seed, config.num_seeds = 5, 2
  rows = experiment.metric_rows('concat', 'jsd', [5, 6], est, -est, truth)
  runs.write_csv(path, experiment.METRIC_FIELDS, rows)
  assert [(r['seed'], r['step']) for r in runs.read_csv(path)][39:41] == [
      ('5', '39'), ('6', '0')]
  (curves,) = experiment.load_metrics(path, config).values()
  np.testing.assert_allclose(curves['estimate'], est, rtol=1e-5)   # '%.6g'
  np.testing.assert_allclose(curves['objective'], -est, rtol=1e-5)
  config.num_seeds = 3              # seed 7 missing: the pair runs again
  assert experiment.load_metrics(path, config) == {}
  assert runs.read_csv(path) == []

  # A file written before the seed column: the run of config.seed.
  old = [{k: v for k, v in r.items() if k != 'seed'} for r in rows[:40]]
  runs.write_csv(path, [f for f in experiment.METRIC_FIELDS if f != 'seed'], old)
  config.num_seeds = 1
  (curves,) = experiment.load_metrics(path, config).values()
  assert curves['estimate'].shape == (40,)
  np.testing.assert_allclose(curves['estimate'], est[0], rtol=1e-5)
  rewritten = runs.read_csv(path)
  assert len(rewritten) == 40 and {r['seed'] for r in rewritten} == {'5'}
  config.seed = 6                   # another seed: not this run
  assert experiment.load_metrics(path, config) == {}


@pytest.fixture(scope='module')
def batched_run(tmp_path_factory):
  """One uninterrupted run of 2 seeds (3 and 4) through experiment.run."""
  workdir = str(tmp_path_factory.mktemp('batched'))
  config = _seeds_config(2)
  return config, workdir, experiment.run(config, workdir)


def _csv_curves(path):
  """{seed: (T,) estimates} read back from metrics.csv, in step order."""
  out = {}
  for row in runs.read_csv(path):
    assert int(row['step']) == len(out.setdefault(int(row['seed']), []))
    out[int(row['seed'])].append(float(row['estimate']))
  return {seed: np.array(v) for seed, v in out.items()}


@pytest.mark.slow
def test_batched_run_writes_every_seed_and_intervals_over_seeds(batched_run):
  config, workdir, summary = batched_run
  curves = _csv_curves(os.path.join(workdir, 'metrics.csv'))
  assert sorted(curves) == [3, 4] and curves[3].shape == (20,)
  assert not np.allclose(curves[3], curves[4])        # different seeds
  assert len(summary) == 2
  for level, row in enumerate(summary):
    means = [curves[s][level * 10:(level + 1) * 10].mean() for s in (3, 4)]
    half = stats.t.ppf(0.975, 1) * np.std(means, ddof=1) / math.sqrt(2)
    assert row['seeds'] == 2
    np.testing.assert_allclose(row['mean'], np.mean(means), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(row['ci95'], half, rtol=1e-4, atol=1e-6)
  table = runs.read_csv(os.path.join(workdir, 'summary.csv'))
  assert set(table[0]) == set(experiment.SUMMARY_FIELDS)
  assert [int(r['seeds']) for r in table] == [2, 2]
  md = open(os.path.join(workdir, 'summary.md')).read()
  assert 'n = 2 seeds (3..4)' in md and 'bias (mean - true MI)' in md
  assert '| mine |' in md and '### timing' in md
  with open(os.path.join(workdir, 'bounds.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_replica_r_equals_the_single_run_of_seed_plus_r(batched_run, tmp_path):
  config, workdir, _ = batched_run
  # Rerunning the finished pair restores its stacked curves without training.
  est, obj, _ = experiment.train_combo('separable', 'mine', config,
                                       os.path.join(workdir, 'runs', 'separable_mine'))
  assert est.shape == obj.shape == (2, 20)
  for r, seed in enumerate((3, 4)):
    single, single_obj, _ = experiment.train_combo(
        'separable', 'mine', _seeds_config(1, seed=seed), str(tmp_path / str(seed)))
    assert single.shape == (20,)
    np.testing.assert_allclose(est[r], single, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obj[r], single_obj, rtol=1e-5, atol=1e-6)


class _Interrupted(Exception):
  pass


@pytest.mark.slow
def test_interrupted_batched_run_resumes_to_the_same_curves(
    batched_run, tmp_path, monkeypatch, capsys):
  config, straight_dir, _ = batched_run
  real = train.make_train_chunk

  def interrupted_after_one_level(*args, **kwargs):
    chunk, calls = real(*args, **kwargs), []

    def first_chunk_only(state, data):   # one chunk = one level, checkpointed
      if calls:
        raise _Interrupted
      calls.append(1)
      return chunk(state, data)
    return first_chunk_only

  workdir = str(tmp_path)
  monkeypatch.setattr(train, 'make_train_chunk', interrupted_after_one_level)
  with pytest.raises(_Interrupted):
    experiment.run(config, workdir)
  assert runs.read_csv(os.path.join(workdir, 'metrics.csv')) == []
  monkeypatch.setattr(train, 'make_train_chunk', real)
  capsys.readouterr()
  summary = experiment.run(config, workdir)
  assert 'resumed from the checkpoint at step 10' in capsys.readouterr().out
  resumed = _csv_curves(os.path.join(workdir, 'metrics.csv'))
  straight = _csv_curves(os.path.join(straight_dir, 'metrics.csv'))
  assert sorted(resumed) == sorted(straight) == [3, 4]
  for seed in (3, 4):
    np.testing.assert_allclose(resumed[seed], straight[seed], rtol=1e-5, atol=1e-6)
  assert [r['mean'] for r in summary] == pytest.approx(
      [r['mean'] for r in batched_run[2]], rel=1e-5, abs=1e-6)
