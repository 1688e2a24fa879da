"""Smoke tests of experiments/demi.py and experiments/demi_mnist.py (tiny configs)."""

import math
import os

import jax
import numpy as np
import pytest

from experiments import demi as demi_experiment
from experiments import demi_mnist
from experiments.configs import demi as demi_config
from experiments.configs import demi_mnist as demi_mnist_config
from infomax_jax import runs

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _assert_png(path):
  with open(path, 'rb') as f:
    assert f.read(8) == PNG_MAGIC, path


def _assert_schedule(run_dir, config):
  """Train records every log_every steps, evaluations at 0 and the end."""
  records = runs.read_metrics(run_dir)
  steps = lambda split: [r['step'] for r in records if r['split'] == split]
  assert steps('train') == list(range(config.log_every, config.num_steps + 1,
                                      config.log_every))
  assert steps('eval') == [0, config.num_steps]
  assert {r['split'] for r in records} == {'train', 'eval'}
  timing = runs.read_timing(run_dir)['train']
  assert timing['steps'] == config.num_steps and timing['seconds'] > 0


@pytest.mark.parametrize('module', [demi_config, demi_mnist_config])
def test_config_variants(module):
  for variant in module.VARIANTS:
    config = module.get_config(variant)
    assert config.num_steps % config.log_every == 0
    assert config.eval_every % config.log_every == 0
  with pytest.raises(ValueError, match=r"unknown config variant 'huge'; valid "
                     r"variants are: 'default', 'quick'"):
    module.get_config('huge')


def test_criterion_applies_only_above_two_log_k():
  row = {'method': 'demi_resample', 'true_mi': 10.0, 'log_K': math.log(16),
         'estimate': 5.0}
  assert demi_experiment.criterion(row, infonce=2.5) == 'pass'
  assert demi_experiment.criterion(row, infonce=4.5) == 'FAIL'   # < InfoNCE + 1
  assert demi_experiment.criterion({**row, 'estimate': 11.0}, 2.5) == 'FAIL'
  assert demi_experiment.criterion({**row, 'true_mi': 5.0}, 2.5) == ''
  assert demi_experiment.criterion({**row, 'method': 'infonce'}, 2.5) == ''


@pytest.mark.slow
def test_demi_tiny_run(tmp_path):
  config = demi_config.get_config('tiny')
  config.methods = ('infonce', 'demi_oracle', 'demi_resample')
  rows = demi_experiment.run(config, str(tmp_path))
  # One summary row per (setting, method); InfoNCE's run serves every T.
  assert [(r['true_mi'], r['K'], r['T'], r['method']) for r in rows] == [
      (10.0, 16, 2, m) for m in config.methods]
  assert sorted(os.listdir(tmp_path / 'runs')) == [
      'mi10_K16_T1_infonce', 'mi10_K16_T2_demi_oracle', 'mi10_K16_T2_demi_resample']
  for name in os.listdir(tmp_path / 'runs'):
    _assert_schedule(tmp_path / 'runs' / name, config)
  by = {r['method']: r for r in rows}
  log_k = math.log(16)
  assert by['infonce']['estimate'] <= log_k + 1e-5
  # The analytic optimal critics: InfoNCE stays under log K, two oracle DEMI
  # terms (5 nats each, each capped at log K) go above it.
  assert by['infonce']['optimal_critic'] <= log_k + 1e-5
  assert by['demi_oracle']['optimal_critic'] > log_k + 1.0
  for method in ('demi_oracle', 'demi_resample'):
    assert np.isfinite(by[method]['estimate'])
    assert by[method]['true_terms'] == '5.00 + 5.00'
    assert by[method]['criterion'] in ('pass', 'FAIL')   # 10 >= 2 log 16
  assert by['infonce']['criterion'] == '' and by['demi_oracle']['ess'] == ''
  assert 1.0 <= float(by['demi_resample']['ess']) <= 15.0
  assert len(runs.read_csv(tmp_path / 'summary.csv')) == 3
  metrics = runs.read_csv(tmp_path / 'metrics.csv')
  assert len(metrics) == 3 * (2 + 2)             # 2 train + 2 eval records each
  assert {m['split'] for m in metrics} == {'train', 'eval'}
  assert '| DEMI (oracle) |' in (tmp_path / 'summary.md').read_text()
  _assert_png(tmp_path / 'demi.png')
  _assert_png(tmp_path / 'demi_terms.png')


@pytest.mark.slow
def test_chain_bilinear_broadcasts_like_a_pair_critic():
  model = demi_mnist.ChainBilinear((8, 4), num_terms=2)
  kx, ky, ki = jax.random.split(jax.random.PRNGKey(0), 3)
  x, y = jax.random.normal(kx, (5, 6)), jax.random.normal(ky, (5, 6))
  params = model.init(ki, x[:1], y[:1], 0)
  ii, jj = np.meshgrid(np.arange(5), np.arange(5), indexing='ij')
  for t in range(2):
    matrix = model.apply(params, x[:, None], y[None], t)
    explicit = model.apply(params, x[ii.ravel()], y[jj.ravel()], t).reshape(5, 5)
    np.testing.assert_allclose(matrix, explicit, rtol=1e-5, atol=1e-6)
  # One kernel W_t per term on shared codes: the two terms differ.
  assert not np.allclose(model.apply(params, x, y, 0), model.apply(params, x, y, 1))


@pytest.mark.slow
def test_demi_mnist_tiny_run(tmp_path, mnist_dir):
  config = demi_mnist_config.get_config('tiny')
  config.methods = ('infonce', 'demi_resample')
  rows = demi_mnist.run(config, str(tmp_path))
  assert [r['method'] for r in rows] == ['infonce', 'demi_resample']
  for method in config.methods:
    _assert_schedule(tmp_path / 'runs' / method, config)
  by = {r['method']: r for r in rows}
  assert by['infonce']['mi_test'] <= math.log(config.batch_size) + 1e-5
  assert by['infonce']['terms_test'].count('+') == 0
  # DEMI: two terms (x' = rows 7-13, then all of x) whose sum is the estimate.
  terms = [float(v) for v in by['demi_resample']['terms_test'].split(' + ')]
  assert len(terms) == 2
  assert sum(terms) == pytest.approx(by['demi_resample']['mi_test'], abs=0.011)
  assert 1.0 <= float(by['demi_resample']['ess_test']) <= config.batch_size - 1
  last = runs.read_metrics(tmp_path / 'runs' / 'demi_resample', 'eval')[-1]
  assert last['baseline_clean_pixels'] == by['demi_resample']['pixel_baseline']
  assert all(r['steps'] == config.num_steps and r['train_seconds'] > 0 for r in rows)
  assert len(runs.read_csv(tmp_path / 'summary.csv')) == 2
  _assert_png(tmp_path / 'demi_mnist.png')
