"""Smoke tests of experiments/dim.py: real MNIST (tiny) and mocked CIFAR-10."""

import csv
import os

import ml_collections
import numpy as np
import pytest

from experiments import dim as dim_experiment
from experiments.configs import dim as dim_config
from infomax_jax import runs


def _rows(workdir):
  with open(os.path.join(workdir, 'dim_table.csv'), newline='') as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_dim_tiny_mnist_writes_table_and_resumes(mnist_dir, tmp_path):
  config = dim_config.get_config('tiny')
  config.data_dir = str(mnist_dir)
  rows = dim_experiment.run(config, str(tmp_path))
  assert [r['run'] for r in rows] == ['control', 'G_dv', 'L_jsd_prior']
  table = _rows(tmp_path)
  assert [r['model'] for r in table] == ['random init', 'DIM(G)', 'DIM(L)']
  assert [int(r['steps']) for r in table] == [0, 4, 4]
  # Random conv features of MNIST are linearly informative: far above the
  # 10 % of chance even with the tiny probe set (66 % measured).
  assert float(table[0]['conv_linear']) > 0.3
  # At init σ(Y) is nearly a point mass at 1/2, whose W1 to U[0, 1] is
  # exactly 1/4; any spread lowers it.
  assert 0.2 < float(table[0]['w1_prior']) <= 0.25
  for row in table:
    assert float(row['energy_prior']) > 0.0
  assert float(table[0]['train_seconds']) == 0.0   # the control trains nothing
  assert (tmp_path / 'mnist' / 'G_dv' / 'timing.json').exists()
  # The discriminator exists (and is reported) only with the prior term.
  assert table[2]['discriminator_accuracy'] != ''
  assert table[0]['discriminator_accuracy'] == table[1]['discriminator_accuracy'] == ''
  markdown = (tmp_path / 'dim_table.md').read_text()
  assert '### mnist' in markdown and 'DIM(L) | jsd | 0.1' in markdown
  for name in ('dim.png', 'dim_prior.png'):
    assert (tmp_path / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  # A rerun re-uses the finished runs: same table.
  again = dim_experiment.run(config, str(tmp_path))
  assert [r['conv_linear'] for r in again] == [r['conv_linear'] for r in rows]
  # skip_unfinished tabulates the finished runs and trains nothing new.
  config.runs.L_dv = ml_collections.ConfigDict(
      dict(alpha=0.0, beta=1.0, gamma=0.0, estimator='dv'))
  config.run_names = ('control', 'L_dv')
  config.skip_unfinished = True
  assert [r['run'] for r in dim_experiment.run(config, str(tmp_path))] == ['control']
  assert not (tmp_path / 'mnist' / 'L_dv').exists()


@pytest.mark.slow
def test_dim_cifar10_through_mocked_tfds(tmp_path):
  import tensorflow_datasets as tfds  # a core dependency: no skip in CI
  config = dim_config.get_config('tiny')
  config.datasets = ('cifar10',)
  config.data_source = 'tfds'
  config.data_dir = str(tmp_path / 'tfds')
  config.train_examples = 0
  config.test_examples = 0
  # The control row (encoder at init, probes, test InfoNCE) exercises the
  # data path and the 32x32x3 encoder; training is covered on MNIST above.
  config.run_names = ('control',)
  with tfds.testing.mock_data(num_examples=32):
    rows = dim_experiment.run(config, str(tmp_path / 'run'))
  assert len(rows) == 1 and rows[0]['dataset'] == 'cifar10'
  assert rows[0]['model'] == 'random init'
  assert np.isfinite(float(rows[0]['infonce_test']))
  assert '### cifar10' in (tmp_path / 'run' / 'dim_table.md').read_text()


def test_dim_unknown_run_name_lists_valid_ones():
  config = dim_config.get_config('tiny')
  config.run_names = ('L_nce',)
  with pytest.raises(ValueError, match="unknown run 'L_nce'; valid: .*'G_dv'"):
    runs.run_names(config)


def test_dim_config_variants():
  full = dim_config.get_config()
  # The full grid: control + {G, L} x {infonce, jsd, dv} x {prior, no prior}
  # + {G, L} InfoNCE with prior and R1.
  assert len(full.runs) == 15
  assert full.runs.G_infonce_prior_r1.gradient_penalty == 10.0
  assert full.runs.L_infonce_prior.get('gradient_penalty', 0.0) == 0.0
  assert full.runs.L_infonce_prior.gamma == 0.1 and full.runs.G_dv_prior.gamma == 1.0
  assert runs.run_names(full)[0] == 'control'
  cpu = dim_config.get_config('cpu')
  assert cpu.runs.L_infonce_prior1_r1.gradient_penalty == 10.0
  assert set(runs.run_names(cpu)) <= set(cpu.runs.keys())
  long = dim_config.get_config('cpu_long')
  assert long.num_steps == 2000 and long.critic_units == cpu.critic_units
  assert runs.run_names(long) == ['control', 'L_infonce', 'G_infonce']
  with pytest.raises(ValueError, match="valid variants are: '', 'cpu', 'cpu_long', 'tiny'"):
    dim_config.get_config('huge')
