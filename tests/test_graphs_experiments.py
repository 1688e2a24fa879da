"""The DGI and InfoGraph experiments' tiny configs, end to end on real data.

Run as the README documents (``python -m experiments.NAME --config=...:tiny``)
when INFOMAX_DATA_DIR is set; they skip only when it is unset.
"""

import os
import subprocess
import sys

import pytest

from infomax_jax import graphs
from infomax_jax import runs
from tests import graphs_fixtures as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tiny configs: DGI trains 3 epochs on Cora (patience 20 never stops it),
# InfoGraph 1 epoch on MUTAG; each writes a 'test' record at its last epoch.
EXPECTED = {
    'dgi': ('cora/seed0', [('train', 1), ('train', 2), ('train', 3),
                           ('test', 3)],
            {'best_epoch', 'best_loss', 'acc_mean', 'acc_std', 'acc_min',
             'acc_max'}),
    'infograph': ('MUTAG/seed0', [('train', 1), ('test', 1)],
                  {'acc_mean', 'acc_fold_std'}),
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
      [1, 2, 3] if name == 'dgi' else [2])
