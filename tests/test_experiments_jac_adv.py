"""Smoke tests of the conditioning (Fig. 2) and adversarial (Fig. 1c) experiments.

Tiny configs on real MNIST ($INFOMAX_DATA_DIR, see conftest.mnist_dir); the
pixel baselines are stubbed so that the tests time the experiments, not the
baselines.
"""

import math

import pytest

from experiments import adversarial
from experiments import conditioning
from experiments.configs import adversarial as adversarial_config
from experiments.configs import conditioning as conditioning_config
from infomax_jax import runs
from infomax_jax import twoview

_BASELINES = {'baseline_clean_pixels': 0.85, 'baseline_noisy_pixels': 0.84}


def _workdir(tmp_path, monkeypatch) -> str:
  monkeypatch.setattr(twoview, 'pixel_baselines', lambda *a: dict(_BASELINES))
  return str(tmp_path)


def _is_png(path) -> bool:
  with open(path, 'rb') as f:
    return f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('module', [conditioning_config, adversarial_config])
def test_unknown_variant_raises(module):
  with pytest.raises(ValueError, match="unknown config variant 'fast'"):
    module.get_config('fast')


@pytest.mark.slow
def test_conditioning_tiny_writes_percentiles_and_plot(tmp_path, mnist_dir, monkeypatch):
  config = conditioning_config.get_config('tiny')
  config.data_dir = str(mnist_dir)
  workdir = _workdir(tmp_path, monkeypatch)
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
  assert _is_png(tmp_path / 'conditioning.png')


@pytest.mark.slow
def test_adversarial_tiny_writes_probe_accuracy_and_plot(tmp_path, mnist_dir, monkeypatch):
  config = adversarial_config.get_config('tiny')
  config.data_dir = str(mnist_dir)
  workdir = _workdir(tmp_path, monkeypatch)
  adversarial.run(config, workdir)
  evals = runs.read_metrics(workdir, 'eval')
  assert [r['step'] for r in evals] == [0, 20]
  # At init the flow is near the identity: a fresh linear probe on g(top)
  # reads the digits as well as one on pixels (~0.84), far above chance.
  assert evals[0]['probe_accuracy'] > 0.75
  assert evals[-1]['baseline_noisy_pixels'] == 0.84
  trains = runs.read_metrics(workdir, 'train')
  assert [r['step'] for r in trains] == list(range(config.log_every, 21, config.log_every))
  # The uniformity loss is a cross-entropy to uniform: >= log(10) always.
  assert all(r['uniformity_loss'] >= math.log(10) - 1e-5 for r in trains)
  assert _is_png(tmp_path / 'adversarial.png')
