"""The DGI and InfoGraph experiments' tiny configs, end to end on real data.

Run as the README documents (``python -m experiments.NAME --config=...:tiny``)
when INFOMAX_DATA_DIR is set; they skip only when it is unset.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import dgi
from infomax_jax import graphs
from infomax_jax import runs
from tests import graphs_fixtures as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tiny configs: DGI trains 3 epochs on Cora (patience 20 never stops it),
# InfoGraph 2 epochs on MUTAG; each writes a 'test' record at its last epoch.
EXPECTED = {
    'dgi': ('cora/seed0', [('train', 1), ('train', 2), ('train', 3),
                           ('test', 3)],
            {'best_epoch', 'best_loss', 'acc_mean', 'acc_std', 'acc_min',
             'acc_max'}),
    'infograph': ('MUTAG/seed0', [('train', 1), ('train', 2), ('test', 2)],
                  {'acc_mean', 'acc_fold_std', 'epoch_median'}),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_experiment_runs_tiny_config(name, tmp_path):
  data_dir = fx.real_data_dir()
  env = dict(os.environ, **{graphs.DATA_DIR_ENV: os.path.abspath(data_dir),
                            'JAX_PLATFORMS': 'cpu'})
  proc = subprocess.run(
      [sys.executable, '-m', f'experiments.{name}',
       f'--config=experiments/configs/{name}.py:tiny',
       f'--workdir={tmp_path}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for out in ('results.md', 'results.csv', 'runs.csv', 'metrics.jsonl',
              f'{name}_loss.png'):
    assert (tmp_path / out).exists(), out
  assert '| data set |' in proc.stdout
  tag, steps, test_metrics = EXPECTED[name]
  records = runs.read_metrics(str(tmp_path))
  assert [(r['split'], r['step']) for r in records] == steps
  assert {r['run'] for r in records} == {tag}
  test = records[-1]
  assert set(test) - {'step', 'split', 'run'} == test_metrics
  (row,) = runs.read_csv(str(tmp_path / 'runs.csv'))
  assert float(row['acc_mean']) == test['acc_mean']
  # The training folder's own records (train.train): one per chunk.
  folder = tmp_path / 'runs' / tag.replace('/', '_')
  assert [r['step'] for r in runs.read_metrics(str(folder), 'train')] == (
      [1, 2, 3] if name == 'dgi' else [2, 4])
  if name == 'infograph':
    _check_infograph_epoch_selection(tmp_path, folder)


def _check_infograph_epoch_selection(workdir, folder):
  """Both epochs kept (run folder and embeddings/), each fold's epoch."""
  assert sorted(os.listdir(folder / 'epoch_embeddings')) == [
      'epoch0001.npy', 'epoch0002.npy']
  with np.load(workdir / 'embeddings' / 'MUTAG_seed0.npz') as saved:
    assert saved['epoch_embeddings'].shape == (2, 188, 16)
    np.testing.assert_array_equal(saved['epochs'], [1, 2])
    np.testing.assert_array_equal(saved['embeddings'],
                                  saved['epoch_embeddings'][-1])
  folds = runs.read_csv(str(workdir / 'folds.csv'))
  assert len(folds) == 3 and {f['epoch'] for f in folds} <= {'1', '2'}
  table = (workdir / 'results.md').read_text()
  assert 'chosen epoch: median (range)' in table and 'validation' in table


def test_infograph_config_selects_epochs_on_validation_folds():
  from experiments import infograph  # pylint: disable=g-import-not-at-top
  from experiments.configs import infograph as configs  # pylint: disable=g-import-not-at-top
  config = configs.get_config()
  assert config.epoch_selection == 'validation'
  assert config.seeds == tuple(range(10)) and config.select_every_epochs == 1
  tiny = configs.get_config('tiny')
  assert tiny.epoch_selection == 'validation' and tiny.seeds == (0,)
  config.epoch_selection = 'test'
  with pytest.raises(ValueError, match="valid values are: 'validation', 'last'"):
    infograph.run(config, '/nonexistent/never/written')


def test_dgi_summary_interval_over_seeds():
  """results.md's 'seed ci95' is the Student-t 95 % half-width of the mean of
  the per-seed accuracies (t(0.975, 2) = 4.303), beside their std."""
  rows = [{'acc_mean': m, 'epochs': 100} for m in (82.0, 83.0, 84.0)]
  details = [{'accuracy': a / 100} for a in (82.0, 82.0, 83.0, 83.0, 84.0, 84.0)]
  out = dgi.summarize(rows, details)
  assert out['probe_runs'] == 2 and out['acc_mean'] == 83.0
  assert out['seed_mean_std'] == round(np.sqrt(2 / 3), 2)
  assert out['seed_mean_ci95'] == round(4.302652729911275 / np.sqrt(3), 2) == 2.48
  assert dgi.summarize(rows[:1], details[:2])['seed_mean_ci95'] == 0.0
