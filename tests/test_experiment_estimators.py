"""Tests of experiments/estimators.py: resume, shards, tables (fake fits), one real fit."""

import json
import os
import types

import numpy as np
import pytest

from experiments import estimators as experiment
from experiments.configs import estimators as estimators_config
from infomax_jax import runs


def _config(**overrides):
  config = estimators_config.get_config('quick')
  config.tasks = ('normal-1x1-0.75', 'student-2x2-dof3')
  config.bounds, config.critics, config.seeds = ('infonce', 'smile'), ('concat',), (0, 1)
  config.num_samples = 400
  config.update(overrides)
  return config


def _fake_fit(calls, estimates):
  """A stand-in for estimate_mi returning ``estimates[bound]`` (no training)."""
  def fit(x, y, *, bound, critic, seed, **kwargs):
    del y, kwargs
    calls.append((x.shape, critic, bound, seed))
    return types.SimpleNamespace(mi=estimates[bound], stderr=0.01, eval_bound=bound,
                                 steps_run=300, best_step=200, seconds=2.0)
  return fit


@pytest.mark.slow
def test_resume_shards_and_tables(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(experiment, 'estimate_mi',
                      _fake_fit(calls, {'infonce': 0.41, 'smile': 0.1}))
  workdir = str(tmp_path)
  # Shard 1 of 2 runs every second task only, and writes no tables.
  rows = experiment.run(_config(shard_index=1, num_shards=2), workdir)
  assert {k[0] for k in rows} == {'student-2x2-dof3'} and len(calls) == 4
  assert os.path.exists(tmp_path / 'results.shard1of2.jsonl')
  assert not os.path.exists(tmp_path / 'table.md')
  # The single-shard run reads that shard and fits only the other task.
  rows = experiment.run(_config(), workdir)
  assert len(calls) == 8 and len(rows) == 8
  assert [c[0] for c in calls[4:]] == [(400, 1)] * 4       # normal-1x1 samples
  assert experiment.run(_config(), workdir) == rows        # all done: no fit
  assert len(calls) == 8
  with open(tmp_path / 'results.jsonl') as f:
    assert {json.loads(line)['task'] for line in f} == {'normal-1x1-0.75'}

  table = {(r['task'], r['bound']): r
           for r in runs.read_csv(os.path.join(workdir, 'table.csv'))}
  assert len(table) == 4
  row = table['normal-1x1-0.75', 'infonce']
  assert float(row['mean_estimate']) == pytest.approx(0.41)
  assert row['n_seeds'] == '2' and row['accurate'] == '1'
  assert table['normal-1x1-0.75', 'smile']['accurate'] == '0'   # 0.1 vs 0.413
  md = (tmp_path / 'table.md').read_text()
  assert '| normal-1x1-0.75 | 1x1 | 0.413 | 0.410 | 0.100* |' in md
  assert '| student-2x2-dof3 | 2x2 | 0.557 | 0.410* | 0.100* |' in md
  assert '| concat | 1/2 | 0/2 |' in md      # accuracy: both tasks < log K
  assert ('Default (bound=infonce, critic=concat) misses: student-2x2-dof3 '
          '(0.410 vs 0.557)') in md
  assert '| concat | 2.0 / 300 | 2.0 / 300 |' in (tmp_path / 'timing.md').read_text()
  assert (tmp_path / 'estimators.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_is_accurate_and_bad_shard_raise():
  assert experiment.is_accurate(1.08, 1.0) and experiment.is_accurate(0.15, 0.06)
  assert not experiment.is_accurate(1.2, 1.0)
  with pytest.raises(ValueError, match='need 0 <= shard_index < num_shards'):
    experiment.estimate_all(_config(shard_index=2, num_shards=2), '.')
  with pytest.raises(ValueError, match="unknown config variant 'fast'"):
    estimators_config.get_config('fast')
  for variant in (None, 'check', 'quick'):      # what runs.main checks first
    runs.validate(estimators_config.get_config(variant))


@pytest.mark.slow
def test_one_real_estimate(tmp_path):
  config = _config(tasks=('normal-1x1-0.75',), bounds=('infonce',), seeds=(0,))
  config.estimator.batch_size, config.estimator.steps = 64, 60
  config.estimator.eval_every = 20
  (row,) = experiment.run(config, str(tmp_path)).values()
  assert np.isfinite(row['estimate']) and row['eval_bound'] == 'infonce'
  assert row['true_mi'] == pytest.approx(0.4133, abs=1e-4)
  assert row['estimate'] <= np.log(64)


def _row(task, seed, estimate, lo, hi, truth=0.5, seconds=1.0):
  return dict(task=task, critic='concat', bound='infonce', seed=seed,
              true_mi=truth, estimate=estimate, stderr=(hi - lo) / 2 / 1.96,
              interval_lo=lo, interval_hi=hi, seconds=seconds, steps_run=600)


def test_coverage_stats_by_hand():
  # Truth 0.5; intervals [0.4, 0.6], [0.45, 0.55], [0.52, 0.62], [0.3, 0.5].
  group = [_row('t', 0, 0.5, 0.4, 0.6), _row('t', 1, 0.5, 0.45, 0.55),
           _row('t', 2, 0.57, 0.52, 0.62), _row('t', 3, 0.4, 0.3, 0.5)]
  c = experiment.coverage_stats(group)
  assert c['coverage'] == 0.75 and c['n'] == 4            # the third misses
  # The mean estimate 0.4925 lies in the first, second and fourth interval.
  assert c['calibration'] == 0.75
  assert c['mean'] == pytest.approx(0.4925) and c['bias'] == pytest.approx(-0.0075)
  assert c['sd'] == pytest.approx(np.std([0.5, 0.5, 0.57, 0.4], ddof=1))
  assert c['half'] == pytest.approx((0.1 + 0.05 + 0.05 + 0.1) / 4)
  # sd 0.070 > 1.2 x the standard error 0.075 / 1.96 = 0.046: too narrow.
  assert c['verdict'] == 'interval too narrow'
  biased = [_row('t', s, 0.3, 0.28, 0.32) for s in range(3)]
  assert experiment.coverage_stats(biased)['verdict'] == 'bias dominates'
  assert experiment.coverage_stats(biased)['coverage'] == 0.0
  assert experiment.coverage_stats(biased)['calibration'] == 1.0
  # Bias 0.03 is inside the half-width 0.05 but above the standard error
  # 0.05 / 1.96: the truth is covered, yet at far below the nominal rate
  # once the estimates scatter, so the verdict names the bias.
  near = [_row('t', s, e, e - 0.05, e + 0.05) for s, e in enumerate([0.46, 0.47, 0.48])]
  assert experiment.coverage_stats(near)['coverage'] == 1.0
  assert experiment.coverage_stats(near)['verdict'] == 'bias dominates'


def test_report_coverage_column_and_timed_run_wins(tmp_path):
  """Repetitions copied in as shard files add the coverage column; the
  unsharded run's seed-0 row (the one timed beside BMI) wins over theirs."""
  config = _config(tasks=('normal-1x1-0.75',), bounds=('infonce',), seeds=(0,),
                   report=True)
  config.coverage_tasks, config.coverage_seeds = ('normal-1x1-0.75',), (0, 1, 2, 3)
  truth = 0.4133
  reps = [_row('normal-1x1-0.75', s, e, e - 0.02, e + 0.02, truth, seconds=9.0)
          for s, e in enumerate([0.40, 0.41, 0.43, 0.50])]     # covers 3 of 4
  with open(tmp_path / 'results.shard0of2.jsonl', 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in reps)
  with open(tmp_path / 'results.jsonl', 'w') as f:      # the timed seed-0 run
    f.write(json.dumps(dict(reps[0], seconds=3.5)) + '\n')
  rows = experiment._load(str(tmp_path))
  assert rows['normal-1x1-0.75', 'concat', 'infonce', 0]['seconds'] == 3.5
  text = experiment.report(config, rows, str(tmp_path))
  assert '| normal-1x1-0.75 | 0.413 | 0.400 | [0.380, 0.420] | yes | 75% of 4 | 3.5 |' in text
  assert 'at >= 90 % on 0 of 1 tasks' in text
  # The mean estimate 0.435 lies in [0.41, 0.45] only of the four intervals.
  assert '| normal-1x1-0.75 | 0.413 | 4 | 75% | 25% | 0.435 |' in text
  (csv_row,) = runs.read_csv(str(tmp_path / 'report.csv'))
  assert float(csv_row['coverage']) == 0.75 and csv_row['repetitions'] == '4'
