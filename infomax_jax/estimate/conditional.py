"""``estimate_cmi``: conditional mutual information I(X; Y | Z) from samples.

By the chain rule, I(X; Y | Z) = I(X; (Y, Z)) - I(X; Z). ``estimate_cmi``
estimates both terms with ``estimate_mi`` under the same settings and the
same seed, hence the same train / test split and the same standardisation of
Z's columns, and reports their difference.

Bias. Each term is a variational lower-bound estimate, biased low by an amount
that grows with its MI and its dimension; I(X; (Y, Z)) >= I(X; Z) is the larger
and higher-dimensional one, so the difference is usually biased low as well,
and it is not a bound: it can fall below 0 (reported as is, not clipped) when
the true CMI is 0. Its interval combines the two terms' standard errors as if
independent (the terms share the test rows and are positively correlated, so
this is conservative).
"""

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import special

from infomax_jax.estimate.core import estimate_mi
from infomax_jax.estimate.guards import MIEstimate
from infomax_jax.estimate.inputs import _as_samples
from infomax_jax.estimate.inputs import _check_not_constant


class CMIEstimate(NamedTuple):
  """The result of ``estimate_cmi``.

  Attributes:
    cmi: the estimate of I(X; Y | Z) in nats: ``joint.mi - marginal.mi``.
    stderr: sqrt(joint.stderr^2 + marginal.stderr^2).
    interval: (lo, hi): cmi +- z stderr at ``confidence``.
    confidence: the interval's nominal coverage.
    joint: the ``MIEstimate`` of I(X; (Y, Z)).
    marginal: the ``MIEstimate`` of I(X; Z).
    seconds: wall time of both fits.
  """
  cmi: float
  stderr: float
  interval: tuple[float, float]
  confidence: float
  joint: MIEstimate
  marginal: MIEstimate
  seconds: float


def estimate_cmi(x: Any, y: Any, z: Any, *, confidence: float = 0.95,
                 **kwargs) -> CMIEstimate:
  """Estimates I(X; Y | Z) in nats as I(X; (Y, Z)) - I(X; Z).

  Args:
    x: (n,) or (n, d_x) samples of X.
    y: (n,) or (n, d_y) samples of Y.
    z: (n,) or (n, d_z) samples of the conditioning variable Z; row i of x,
      y and z form the i-th sample.
    confidence: nominal coverage of the interval.
    **kwargs: ``estimate_mi``'s keyword arguments (bound, critic, steps,
      ensemble, seed, ...), used for both terms.

  Returns:
    A ``CMIEstimate`` (the difference, its interval and both terms).

  Raises:
    ValueError: x, y and z hold different numbers of samples, a non-finite
      or constant value / column, too few samples, or a bad keyword (from
      ``estimate_mi``).
    TypeError: non-numeric samples.
    EstimationError: either term's fit failed.
  """
  xs = _as_samples(x, 'x')
  ys = _as_samples(y, 'y')
  zs = _as_samples(z, 'z')
  n = xs.shape[0]
  for arr, name in ((ys, 'y'), (zs, 'z')):
    if arr.shape[0] != n:
      raise ValueError(f'x, y and z must hold the same number of samples '
                       f'(rows), got x: {xs.shape[0]} rows, y: {ys.shape[0]} '
                       f'rows and z: {zs.shape[0]} rows ({name} differs)')
  # Named checks of y and z here (estimate_mi would call both "y").
  if n >= 2:
    _check_not_constant(zs, 'z', np.ndim(z) == 1)
    _check_not_constant(ys, 'y', np.ndim(y) == 1)
  joint = estimate_mi(xs, np.concatenate([ys, zs], axis=1),
                      confidence=confidence, **kwargs)
  marginal = estimate_mi(xs, zs, confidence=confidence, **kwargs)
  cmi = joint.mi - marginal.mi
  stderr = math.sqrt(joint.stderr ** 2 + marginal.stderr ** 2)
  q = float(special.ndtri(0.5 + confidence / 2))
  return CMIEstimate(cmi=cmi, stderr=stderr,
                     interval=(cmi - q * stderr, cmi + q * stderr),
                     confidence=confidence, joint=joint, marginal=marginal,
                     seconds=joint.seconds + marginal.seconds)
