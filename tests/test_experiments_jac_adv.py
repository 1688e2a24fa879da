"""Smoke tests of the conditioning (Fig. 2) and adversarial (Fig. 1c) experiments.

Tiny configs on real MNIST ($INFOMAX_DATA_DIR, see conftest.mnist_dir); the
pixel baselines are pre-written to the workdir (the runs reuse a cached
baselines.json) so that the tests time the experiments, not the baselines.
"""

import json
import math
import os

import pytest

from experiments import adversarial
from experiments import conditioning
from experiments.configs import adversarial as adversarial_config
from experiments.configs import conditioning as conditioning_config
from infomax_jax import runs
from infomax_jax import train as train_lib

_BASELINES = {'baseline_clean_pixels': 0.85, 'baseline_noisy_pixels': 0.84}


def _workdir(tmp_path) -> str:
  with open(tmp_path / 'baselines.json', 'w') as f:
    json.dump(_BASELINES, f)
  return str(tmp_path)


@pytest.mark.parametrize('module', [conditioning_config, adversarial_config])
def test_unknown_variant_raises(module):
  with pytest.raises(ValueError, match="unknown config variant 'fast'"):
    module.get_config('fast')


def test_conditioning_tiny_writes_percentiles_and_plot(tmp_path, mnist_dir):
  config = conditioning_config.get_config('tiny')
  config.data_dir = str(mnist_dir)
  workdir = _workdir(tmp_path)
  conditioning.run(config, workdir)
  evals = runs.read_metrics(workdir, 'eval')
  assert [r['step'] for r in evals] == [0, 20]
  for record in evals:
    values = [record[k] for k in conditioning.PERCENTILE_KEYS]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert values == sorted(values)
    assert record['baseline_clean_pixels'] == 0.85
  # Identity at init: kappa ~ 1.
  assert evals[0]['log_cond_p100'] < 0.1
  assert os.path.exists(os.path.join(workdir, 'conditioning.png'))


def test_adversarial_tiny_writes_probe_accuracy_and_plot(tmp_path, mnist_dir):
  config = adversarial_config.get_config('tiny')
  config.data_dir = str(mnist_dir)
  workdir = _workdir(tmp_path)
  adversarial.run(config, workdir)
  evals = runs.read_metrics(workdir, 'eval')
  assert [r['step'] for r in evals] == [0, 20]
  assert all(0 <= r['probe_accuracy'] <= 1 for r in evals)
  trains = runs.read_metrics(workdir, 'train')
  assert {'classifier_loss', 'classifier_accuracy', 'uniformity_loss'} <= set(trains[0])
  assert os.path.exists(os.path.join(workdir, 'adversarial.png'))
