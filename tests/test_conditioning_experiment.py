"""Smoke tests of the conditioning experiment at image scale (issue #21): the
DIM encoder on 32×32×3 inputs. The Fig. 2 (twoview) path runs in
tests/test_experiments_jac_adv.py with the same evaluation hook."""

import math

import numpy as np
import pytest

from experiments import conditioning
from experiments.configs import conditioning as conditioning_config
from infomax_jax import runs


def _is_png(path) -> bool:
  with open(path, 'rb') as f:
    return f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_to_rgb32_pads_and_tiles():
  images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
  out = conditioning.to_rgb32(images)
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
  for c in range(3):
    np.testing.assert_array_equal(out[:, 2:30, 2:30, c], images)
  assert not out[:, :2].any() and not out[:, 30:].any()
  assert not out[:, :, :2].any() and not out[:, :, 30:].any()
  rgb = np.ones((1, 32, 32, 3), np.uint8)
  np.testing.assert_array_equal(conditioning.to_rgb32(rgb), rgb)
  with pytest.raises(ValueError, match=r'H, W <= 32, got shape \(1, 40, 40\)'):
    conditioning.to_rgb32(np.zeros((1, 40, 40), np.uint8))


def test_unknown_setting_raises():
  config = conditioning_config.get_config('tiny')
  config.setting = 'vae'
  with pytest.raises(ValueError, match="unknown setting 'vae'"):
    conditioning.run(config, '/nonexistent')


def _check_records(evals, rank: int):
  for record in evals:
    values = [record[k] for k in conditioning.PERCENTILE_KEYS]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert values == sorted(values)
    assert 1.0 <= record['eff_rank'] <= rank
    assert record['mf_certified'] == 1.0     # small enough to be exhausted
    assert record['mf_max_abs_error'] <= math.log1p(1e-2)
    assert record['exact_seconds'] > 0 and record['matrix_free_seconds'] > 0


@pytest.mark.slow
def test_dim_tiny_on_32x32x3(tmp_path, mnist_dir):
  config = conditioning_config.get_config('dim_tiny')
  config.data_dir = str(mnist_dir)
  conditioning.run(config, str(tmp_path))
  evals = [r for r in runs.read_metrics(str(tmp_path), 'eval') if 'eff_rank' in r]
  assert [r['step'] for r in evals] == [0, 10]
  features = config.encoder_kwargs.features
  _check_records(evals, features)
  spectra = conditioning.load_spectra(str(tmp_path))
  assert sorted(spectra) == [0, 10]
  # Y (16-d) of 3072 pixels: 16 singular values per input, descending.
  assert spectra[10].shape == (config.jacobian_examples, features)
  assert np.all(np.diff(spectra[10], axis=1) <= 0)
  np.testing.assert_allclose(
      evals[-1]['log_cond_p100'],
      np.max(np.log(spectra[10][:, 0] / spectra[10][:, -1])), rtol=1e-5)
  assert _is_png(tmp_path / 'spectra.png')
