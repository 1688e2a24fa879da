"""The inputs of ``estimate_mi``: checked in float64, standardised without overflow."""

from typing import Any, Mapping

import jax
import numpy as np
from scipy import special

Array = jax.Array

# ---------------------------------------------------------------- validation --

def _as_samples(a: Any, name: str) -> np.ndarray:
  """(n,) or (n, d) real array -> float64 (n, d) numpy array of finite values."""
  try:
    arr = np.asarray(a)
  except Exception as e:  # pylint: disable=broad-except
    raise TypeError(f'{name} must be an array of samples, got '
                    f'{type(a).__name__}') from e
  if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                 or np.issubdtype(arr.dtype, np.integer)
                                 or arr.dtype == bool):
    raise TypeError(f'{name} must hold real numbers, got dtype {arr.dtype}')
  one_d = arr.ndim == 1
  if one_d:
    arr = arr[:, None]
  if arr.ndim != 2:
    raise ValueError(f'{name} must have shape (n,) or (n, d), got shape '
                     f'{arr.shape}')
  if arr.shape[1] < 1:
    raise ValueError(f'{name} must have at least one column, got shape '
                     f'{arr.shape}')
  arr = arr.astype(np.float64)
  bad = ~np.isfinite(arr)
  if bad.any():
    rows = np.flatnonzero(bad.any(axis=1))
    i = int(rows[0])
    j = int(np.flatnonzero(bad[i])[0])
    raise ValueError(f'{name} has {int(bad.sum())} non-finite values (nan or '
                     f'inf) in {rows.size} samples; the first is '
                     f'{_index(name, i, j, one_d)} = {arr[i, j]}; drop or impute '
                     f'them first')
  return arr


def _index(name: str, i: int, j: int, one_d: bool) -> str:
  return f'{name}[{i}]' if one_d else f'{name}[{i}, {j}]'


def _check_float32_range(arr: np.ndarray, name: str, what: str,
                         rows: np.ndarray | None = None) -> None:
  """Raises a ValueError naming the first value of ``arr`` beyond float32's range.

  Args:
    arr: (n, d) float64 values.
    name: the array's name in the message.
    what: what the values are, and what to do about them (ends the message).
    rows: the original row index of each row of ``arr`` (default: its own).
  """
  big = np.abs(arr) > np.finfo(np.float32).max
  if big.any():
    i = int(np.flatnonzero(big.any(axis=1))[0])
    j = int(np.flatnonzero(big[i])[0])
    row = i if rows is None else int(rows[i])
    raise ValueError(
        f'{name} has {int(big.sum())} values beyond float32\'s range (|v| > '
        f'{np.finfo(np.float32).max:.3g}); the first is {name}[{row}, {j}] = '
        f'{arr[i, j]:.6g}: {what}')


def _check_positive_int(v: Any, name: str) -> int:
  if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
    raise ValueError(f'{name} must be a positive int, got {v!r}')
  return int(v)


def _freeze(v: Any) -> Any:
  """Lists -> tuples (recursively) so that hyperparameters are hashable."""
  if isinstance(v, (list, tuple)):
    return tuple(_freeze(e) for e in v)
  if isinstance(v, Mapping):
    return tuple(sorted((k, _freeze(e)) for k, e in v.items()))
  return v


# ----------------------------------------------------------- preprocessing --

STANDARDIZATIONS = ('rank', 'zscore', 'none')


def _standardize(train: np.ndarray, test: np.ndarray,
                 how: str) -> tuple[np.ndarray, np.ndarray]:
  """Per-coordinate monotone maps fitted on the training split (MI-preserving).

  Computed in float64 (inputs: float64), returned in float64; nothing
  overflows for any finite float64 input.

  rank: v -> Phi^{-1}(F_n(v)), F_n the training split's empirical CDF at the
  levels (i + 1/2) / n, linearly interpolated between the sorted training
  values (standard normal margins, whatever the tails; test values outside
  the training range are clipped to it). zscore: (v - mean) / std, with v
  first divided by the coordinate's largest training magnitude (no overflow
  in the squares, whatever the scale); a constant coordinate is centred and
  not scaled. none: unchanged.
  """
  if how == 'none':
    return train, test
  if how == 'rank':
    n = train.shape[0]
    levels = _normal_ppf((np.arange(n) + 0.5) / n).astype(np.float32)
    out_train, out_test = np.empty_like(train), np.empty_like(test)
    for j in range(train.shape[1]):
      srt = np.sort(train[:, j])
      out_train[:, j] = np.interp(train[:, j], srt, levels)
      out_test[:, j] = np.interp(test[:, j], srt, levels)
    return out_train, out_test
  peak = np.max(np.abs(train), axis=0)
  peak = np.where(peak > 0, peak, 1.0)
  train, test = train / peak, test / peak
  center, scale = train.mean(0), train.std(0)
  scale = np.where((np.ptp(train, axis=0) > 0) & (scale > 0), scale, 1.0)
  return (train - center) / scale, (test - center) / scale


def _normal_ppf(p: np.ndarray) -> np.ndarray:
  """Phi^{-1}(p), the standard normal quantile function."""
  return np.sqrt(2.0) * special.erfinv(2.0 * np.asarray(p, np.float64) - 1.0)




def _check_not_constant(arr: np.ndarray, name: str, one_d: bool = False) -> None:
  """Raises a ValueError naming the first column of ``arr`` whose values all agree.

  A constant coordinate carries no information about anything, and the
  per-coordinate standardisation cannot give it unit scale.
  """
  constant = np.flatnonzero(np.ptp(arr, axis=0) == 0)
  if constant.size:
    j = int(constant[0])
    where = name if one_d else f'{name}[:, {j}]'
    raise ValueError(
        f'{where} is constant (all {arr.shape[0]} samples equal {arr[0, j]:.6g}'
        f'; {constant.size} of {arr.shape[1]} columns of {name} are constant): '
        f'a constant coordinate carries no information; drop it')
