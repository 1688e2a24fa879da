"""Tests for infomax_jax.estimate_cmi: Gaussian closed forms and bad inputs."""

import jax
import numpy as np
import pytest

import infomax_jax as im
from infomax_jax import distributions as D

# Small, fast fits: 1-D variables, 4000 samples, 2 critics, <= 600 steps.
FIT = dict(batch_size=128, steps=600, ensemble=2, patience=3)


def _gaussian(cov, n, seed):
  z = jax.random.normal(jax.random.key(seed), (n, 3)) @ np.linalg.cholesky(cov).T
  z = np.asarray(z, np.float64)
  return z[:, :1], z[:, 1:2], z[:, 2:]


@pytest.mark.slow
@pytest.mark.parametrize('cov', [
    # X = Z + e, Y = Z + e': I(X; Y) = 0.14 > 0 but I(X; Y | Z) = 0.
    [[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 1.0]],
    # X, Y independent, Z = X + Y + 0.5 e: I(X; Y) = 0 but I(X; Y | Z) = 0.51.
    [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 2.25]],
], ids=['cmi0-mi-positive', 'mi0-cmi-positive'])
def test_cmi_on_gaussian_closed_forms(cov):
  cov = np.array(cov)
  truth = D.gaussian_cmi(cov, 1, 1)
  x, y, z = _gaussian(cov, 4000, seed=0)
  r = im.estimate_cmi(x, y, z, **FIT)
  assert abs(r.cmi - truth) < 0.08, (r.cmi, truth, r.joint.mi, r.marginal.mi)
  # The terms: I(X; (Y, Z)) and I(X; Z), each near its closed form.
  i_xz = D.gaussian_mi(cov[np.ix_([0, 2], [0, 2])], 1)
  assert abs(r.marginal.mi - i_xz) < 0.08
  assert abs(r.joint.mi - (truth + i_xz)) < 0.08
  np.testing.assert_allclose(r.stderr, np.hypot(r.joint.stderr, r.marginal.stderr))
  assert r.interval[0] < r.cmi < r.interval[1]


def test_cmi_bad_inputs_name_what_was_expected():
  rng = np.random.default_rng(0)
  x, y, z = rng.normal(size=(3, 200, 2))
  with pytest.raises(ValueError, match=r'same number of samples.*x: 200 rows, y: '
                     r'200 rows and z: 199 rows \(z differs\)'):
    im.estimate_cmi(x, y, z[:199])
  with pytest.raises(ValueError, match=r'z: 201 rows \(z differs\)'):
    im.estimate_cmi(x, y, np.ones((201, 1)))
  with pytest.raises(ValueError, match=r'y: 150 rows .*\(y differs\)'):
    im.estimate_cmi(x, y[:150], z)
  bad = z.copy()
  bad[3, 1] = np.nan
  with pytest.raises(ValueError, match=r'z has 1 non-finite values .* z\[3, 1\] = nan'):
    im.estimate_cmi(x, y, bad)
  const = z.copy()
  const[:, 0] = -2.0
  with pytest.raises(ValueError, match=r'z\[:, 0\] is constant'):
    im.estimate_cmi(x, y, const)
  with pytest.raises(ValueError, match=r'^z is constant'):
    im.estimate_cmi(x, y, np.zeros(200))
  with pytest.raises(ValueError, match='too few samples: got n = 20'):
    im.estimate_cmi(x[:20], y[:20], z[:20])
  with pytest.raises(ValueError, match=r'z must have shape \(n,\) or \(n, d\)'):
    im.estimate_cmi(x, y, z[:, :, None])
