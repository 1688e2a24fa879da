"""Tests of infomax_jax.graphs.protocol with a stand-in experiment (no JAX
training): resume of finished pairs, dropping of unfinished rows, the metrics
records, tables and figure."""

import json
import os

import ml_collections
import numpy as np
import pytest

from infomax_jax import graphs
from infomax_jax import runs


class _Toy:
  """A protocol whose training is instant; counts what it trains."""

  def __init__(self):
    self.trained = []
    self.protocol = graphs.Protocol(
        name='toy', load=lambda name, data_dir: name.upper(),
        train=self.train, settings=('hidden',), options=('checkpoint_every',),
        evaluate=self.evaluate, run_fields=('acc_mean',),
        detail_file='details.csv', detail_fields=('fold', 'accuracy'),
        summarize=lambda rows, details: {
            'acc_mean': np.mean([r['acc_mean'] for r in rows]),
            'folds': len(details)},
        columns=(('acc_mean', 'accuracy', '.1f'), ('folds', 'folds', None)),
        caption='Toy ({bound}, {hidden} units).', paper={'a': '42'})

  def train(self, data, *, seed, workdir, mesh, hidden, checkpoint_every):
    del mesh, checkpoint_every
    assert os.path.isdir(workdir) and hidden == 4
    self.trained.append((data, seed))
    return graphs.TrainResult(losses=[3.0, 2.0, 1.0 + seed], train_seconds=1.0,
                              compile_seconds=0.5, train_cpu_seconds=2.0)

  def evaluate(self, data, result, seed, config):
    del result, config
    return graphs.Evaluation(
        row={'acc_mean': 50.0 + seed},
        details=[{'fold': i, 'accuracy': 0.5} for i in range(2)],
        arrays={'embeddings': np.full(3, seed)} if data == 'A' else {})


def _config():
  return ml_collections.ConfigDict(dict(
      datasets=('a', 'b'), seeds=(0, 1), data_dir=None, bound='jsd',
      hidden=4, checkpoint_every=10))


def _records(workdir):
  return [(r['run'], r['split'], r['step'])
          for r in runs.read_metrics(str(workdir))]


EXPECTED = [(f'{d}/seed{s}', split, step) for d in 'ab' for s in (0, 1)
            for split, step in (('train', 1), ('train', 2), ('train', 3),
                                ('test', 3))]


def test_runs_every_pair_once_and_writes_tables_and_figure(tmp_path):
  toy = _Toy()
  summaries = toy.protocol.run(_config(), str(tmp_path))
  assert toy.trained == [('A', 0), ('A', 1), ('B', 0), ('B', 1)]
  assert _records(tmp_path) == EXPECTED
  test = runs.read_metrics(str(tmp_path), 'test', run='b/seed1')
  assert test == [{'step': 3, 'split': 'test', 'run': 'b/seed1',
                   'acc_mean': 51.0}]
  losses = [r['loss'] for r in runs.read_metrics(str(tmp_path), 'train',
                                                 run='a/seed1')]
  assert losses == [3.0, 2.0, 2.0]
  assert [(s['dataset'], s['seeds'], s['folds'], s['acc_mean'], s['paper'])
          for s in summaries] == [('a', 2, 4, 50.5, '42'),
                                  ('b', 2, 4, 50.5, '')]
  # Per run: 1.5 s of training (compile included); total adds evaluation.
  assert summaries[0]['train_s_per_run'] == 1.5
  rows = runs.read_csv(str(tmp_path / 'runs.csv'))
  assert [(r['dataset'], r['seed'], r['epochs'], r['final_loss'])
          for r in rows] == [('a', '0', '3', '1.0'), ('a', '1', '3', '2.0'),
                             ('b', '0', '3', '1.0'), ('b', '1', '3', '2.0')]
  assert len(runs.read_csv(str(tmp_path / 'details.csv'))) == 8
  table = (tmp_path / 'results.md').read_text()
  assert table.startswith('Toy (jsd, 4 units). Times on ')
  assert '| a | 50.5 | 4 | 2 |' in table
  assert (tmp_path / 'toy_loss.png').stat().st_size > 0
  np.testing.assert_array_equal(
      np.load(tmp_path / 'embeddings' / 'a_seed1.npz')['embeddings'], 1)
  assert not (tmp_path / 'embeddings' / 'b_seed0.npz').exists()
  settings = json.loads(
      (tmp_path / 'runs' / 'b_seed1' / 'settings.json').read_text())
  assert settings == {'dataset': 'b', 'seed': 1, 'hidden': 4}
  timing = runs.read_timing(str(tmp_path / 'runs' / 'b_seed1'))
  assert timing['evaluation']['segments'] == 1


def test_rerun_skips_finished_pairs_and_redoes_an_interrupted_one(tmp_path):
  _Toy().protocol.run(_config(), str(tmp_path))
  again = _Toy()
  again.protocol.run(_config(), str(tmp_path))
  assert again.trained == []
  assert _records(tmp_path) == EXPECTED
  # An interruption after b/seed1 wrote its metrics and details but before
  # its runs.csv row: the rerun drops them and redoes the pair once.
  path = str(tmp_path / 'runs.csv')
  rows = runs.read_csv(path)
  runs.write_csv(path, list(rows[0]), rows[:-1])
  resumed = _Toy()
  resumed.protocol.run(_config(), str(tmp_path))
  assert resumed.trained == [('B', 1)]
  assert _records(tmp_path) == EXPECTED
  details = runs.read_csv(str(tmp_path / 'details.csv'))
  assert [(d['dataset'], d['seed']) for d in details].count(('b', '1')) == 2
  assert len(runs.read_csv(path)) == 4


def test_a_runs_csv_of_other_columns_is_an_error(tmp_path):
  runs.write_csv(str(tmp_path / 'runs.csv'), ('seed', 'acc'),
                 [{'seed': 0, 'acc': 1}])
  with pytest.raises(ValueError, match=r"columns \['seed', 'acc'\], expected "
                                       r"\['dataset', 'seed'"):
    _Toy().protocol.run(_config(), str(tmp_path))
