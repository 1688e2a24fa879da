"""Tests for infomax_jax.runs: the metrics schema, TensorBoard events read back
with tensorboard's own reader, timing, tables and interval bands."""

import json
import os

import numpy as np
import pytest
from scipy import stats
from tensorboard.backend.event_processing import event_accumulator

from infomax_jax import runs


def _scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """Every scalar of the TensorBoard events in ``workdir``, by tag."""
  acc = event_accumulator.EventAccumulator(workdir, size_guidance={'scalars': 0})
  acc.Reload()
  return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
          for tag in acc.Tags()['scalars']}


def test_metric_writer_one_schema_and_tensorboard(tmp_path):
  workdir = str(tmp_path)
  with runs.MetricWriter(workdir) as writer:
    writer.write(0, 'eval', {'acc': np.float32(0.5), 'hist': np.arange(3)})
    writer.write(10, 'train', {'loss': 2.0})
    writer.write(20, 'train', {'loss': 1.5}, run='seed0')
  lines = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert lines == [
      {'step': 0, 'split': 'eval', 'acc': 0.5, 'hist': [0, 1, 2]},
      {'step': 10, 'split': 'train', 'loss': 2.0},
      {'step': 20, 'split': 'train', 'run': 'seed0', 'loss': 1.5}]
  assert [r['step'] for r in runs.read_metrics(workdir, 'train')] == [10, 20]
  assert runs.read_metrics(workdir, 'train', run='seed0')[0]['loss'] == 1.5
  steps, values = runs.series(runs.read_metrics(workdir), 'loss')
  np.testing.assert_array_equal(steps, [10, 20])
  np.testing.assert_array_equal(values, [2.0, 1.5])
  scalars = _scalars(workdir)
  assert scalars['eval/acc'] == [(0, 0.5)]
  assert scalars['train/loss'] == [(10, 2.0)]
  assert scalars['seed0/train/loss'] == [(20, 1.5)]
  assert not any('hist' in tag for tag in scalars)   # scalars only


def test_metric_writer_resume_drops_later_records(tmp_path):
  workdir = str(tmp_path)
  with runs.MetricWriter(workdir) as writer:
    for step in (5, 10, 15):
      writer.write(step, 'train', {'loss': float(step)})
  with runs.MetricWriter(workdir, resume_step=10) as writer:
    writer.write(15, 'train', {'loss': -1.0})
  assert [(r['step'], r['loss']) for r in runs.read_metrics(workdir)] == [
      (5, 5.0), (10, 10.0), (15, -1.0)]
  # TensorBoard purges the events after the resume step, too.
  assert _scalars(workdir)['train/loss'] == [(5, 5.0), (10, 10.0), (15, -1.0)]


def test_reader_accepts_the_old_kind_field_and_errors(tmp_path):
  with open(tmp_path / 'metrics.jsonl', 'w') as f:
    f.write(json.dumps({'step': 1, 'kind': 'eval', 'x': 1.0}) + '\n')
  assert runs.read_metrics(str(tmp_path), 'eval') == [
      {'step': 1, 'split': 'eval', 'x': 1.0}]
  with pytest.raises(FileNotFoundError, match='no metrics.jsonl'):
    runs.read_metrics(str(tmp_path / 'nothing'))
  with pytest.raises(ValueError, match='split'):
    runs.MetricWriter(str(tmp_path), tensorboard=False).write(0, '', {})


def test_check_finite_names_the_metric():
  runs.check_finite({'a': 1.0, 'b': [1.0, 2.0], 'name': 'x'}, 'here')
  with pytest.raises(FloatingPointError, match="metric 'b' became nan at step 3"):
    runs.check_finite({'a': 1.0, 'b': [1.0, float('nan')]}, 'at step 3')


def test_timing_accumulates_over_segments(tmp_path):
  workdir = str(tmp_path)
  runs.add_time(workdir, 10.0, steps=100, compile_seconds=2.0)
  entry = runs.add_time(workdir, 5.0, steps=100, compile_seconds=1.0)
  assert entry == {'seconds': 15.0, 'compile_seconds': 3.0, 'segments': 2,
                   'steps': 200, 'steps_per_s': 200 / 12.0}
  assert runs.read_timing(workdir)['train'] == entry
  runs.add_time(workdir, 1.0, name='eval')
  assert runs.read_timing(workdir)['eval']['seconds'] == 1.0
  assert runs.add_time(workdir, 4.0, steps=8, reset=True)['segments'] == 1


def test_tables_csv_and_markdown(tmp_path):
  path = str(tmp_path / 't.csv')
  runs.write_csv(path, ('a', 'b'), [{'a': 1, 'b': 2.5, 'c': 'ignored'}])
  runs.append_csv(path, ('a', 'b'), [{'a': 3, 'b': ''}])
  assert runs.read_csv(path) == [{'a': '1', 'b': '2.5'}, {'a': '3', 'b': ''}]
  assert runs.read_csv(str(tmp_path / 'missing.csv')) == []
  table = runs.markdown_table(
      [{'a': 1, 'b': 0.123456}, {'a': 'x'}], ('a', 'b'), headers=('A', 'B'),
      formats={'b': '.2f'})
  assert table == '| A | B |\n|---|---|\n| 1 | 0.12 |\n| x | – |\n'
  with pytest.raises(ValueError, match='2 columns but 1 headers'):
    runs.markdown_table([], ('a', 'b'), headers=('A',))


def test_mean_interval_is_students_t():
  samples = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 9.0]])
  mean, half = runs.plots.mean_interval(samples, 0.95)
  np.testing.assert_allclose(mean, [2.0, 5.0])
  sem = samples.std(axis=0, ddof=1) / np.sqrt(3)
  np.testing.assert_allclose(half, sem * stats.t.ppf(0.975, 2))
  _, one = runs.plots.mean_interval(samples[:1])
  np.testing.assert_array_equal(one, [0.0, 0.0])


def test_override_and_run_dir(tmp_path):
  import ml_collections
  base = ml_collections.ConfigDict({'a': 1, 'b': {'c': 2}})
  base.lock()
  out = runs.override(base, a=3, d={'e': 4})
  assert (out.a, out.b.c, out.d.e, base.a) == (3, 2, 4, 1)
  path = str(tmp_path / 'run')
  runs.run_dir(path, {'x': 1})
  open(os.path.join(path, 'keep'), 'w').close()
  runs.run_dir(path, {'x': 1})
  assert os.path.exists(os.path.join(path, 'keep'))   # same settings: kept
  runs.run_dir(path, {'x': 2})
  assert not os.path.exists(os.path.join(path, 'keep'))   # other run: cleared


def test_last_eval_and_finished(tmp_path):
  workdir = str(tmp_path)
  assert runs.last_eval(workdir) == {} and not runs.finished(workdir, 10)
  with runs.MetricWriter(workdir) as writer:
    writer.write(0, 'eval', {'acc': 0.1})
    writer.write(10, 'eval', {'acc': 0.9})
    writer.write(10, 'train', {'loss': 1.0})
    writer.write(12, 'eval', {})                 # an empty record is skipped
  assert runs.last_eval(workdir) == {'step': 10, 'split': 'eval', 'acc': 0.9}
  assert runs.finished(workdir, 10) and not runs.finished(workdir, 20)


def test_run_names_control_first_and_checked():
  import ml_collections
  config = ml_collections.ConfigDict(dict(runs=dict(b={}, control={}, a={})))
  assert runs.run_names(config) == ['control', 'a', 'b']
  config.run_names = ('a',)
  assert runs.run_names(config) == ['a']
  config.run_names = ('nope',)
  with pytest.raises(ValueError, match="unknown run 'nope'; valid: \\['a', 'b', 'control'\\]"):
    runs.run_names(config)


def test_run_row_reads_the_last_evaluation_and_timing(tmp_path):
  workdir = str(tmp_path)
  with runs.MetricWriter(workdir) as writer:
    writer.write(5, 'eval', {'acc': 0.123456789, 'note': 'x'})
  runs.add_time(workdir, 12.34)
  row = runs.run_row(workdir, ['acc', 'note', 'missing', 'run'], run='r1')
  assert row == {'run': 'r1', 'train_seconds': 12.3, 'acc': 0.1235, 'note': 'x',
                 'missing': ''}


def test_atomic_open_replaces_whole_or_not_at_all(tmp_path):
  path = str(tmp_path / 'table.csv')
  runs.write_csv(path, ['a', 'b'], [{'a': 1, 'b': 2}])
  assert open(path).read() == 'a,b\n1,2\n'
  # A write that fails half-way leaves the old file and no temporary behind.
  with pytest.raises(KeyError):
    with runs.atomic_open(path) as f:
      f.write('half a table')
      raise KeyError('interrupted')
  assert open(path).read() == 'a,b\n1,2\n'
  assert sorted(os.listdir(tmp_path)) == ['table.csv']
  with runs.atomic_open(str(tmp_path / 'x.npy'), 'wb') as f:
    np.save(f, np.arange(3))
  np.testing.assert_array_equal(np.load(tmp_path / 'x.npy'), [0, 1, 2])
  with pytest.raises(ValueError, match="'w' or 'wb'"):
    with runs.atomic_open(path, 'a'):
      pass
