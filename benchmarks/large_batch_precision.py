"""Reduced-precision InfoNCE (bf16 / fp16 matmuls, fp32 log-sum-exp) against float64.

  python -m benchmarks.large_batch_precision                    # K = 65536, d = 128
  python -m benchmarks.large_batch_precision --ks=4096,16384 --dim=64

For each K: correlated embeddings (y = 0.8 x + 0.6 noise, scaled so the scores
spread like those of a trained critic at temperature ~0.1), the symmetric
and one-directional InfoNCE loss -I_NCE and its gradient with respect to
(x, y) by ``bounds.streaming.infonce(..., matmul_dtype=...)`` (streaming,
block ``--block_size``), against an independent float64 reference in NumPy
(``reference``: exact row log-sum-exps and the closed-form gradient, row
block by row block). Prints one table: the relative error of the loss (and
the same absolute error relative to the cross-entropy log K - I_NCE), of the
gradient's norm, and of the gradient vector (|g - g_ref| / |g_ref|).
"""

import json
import os
import time
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

_KS = flags.DEFINE_list('ks', ['65536'], 'Batch sizes K.')
_DIM = flags.DEFINE_integer('dim', 128, 'Embedding dimension d.')
_BLOCK = flags.DEFINE_integer('block_size', 2048, 'Column block of the streaming loss.')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16', 'float16'],
                            'matmul dtypes.')
_DIRECTIONS = flags.DEFINE_list('losses', ['x_to_y', 'symmetric'],
                                 "Which losses: 'x_to_y' and/or 'symmetric'.")
_CACHE = flags.DEFINE_string('reference_cache', None, 'Keep the float64 reference '
                              'in this folder (one .npz per K, d, scale, loss) for '
                              'later runs (e.g. one dtype per run).')
_SCALE = flags.DEFINE_float('scale', 1.0, 'Embedding scale (scores ~ scale^2 d '
                            'times 0.8 on the diagonal).')


def embeddings(k: int, dim: int, scale: float = 1.0, seed: int = 0):
  """(x, y) float32 of shape (k, dim): y = 0.8 x + 0.6 noise, each row of norm
  about 3 scale (scores up to ~9 scale^2 on the diagonal, spread ~3 scale^2)."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((k, dim)) * 3 * scale / np.sqrt(dim)
  y = 0.8 * x + 0.6 * rng.standard_normal((k, dim)) * 3 * scale / np.sqrt(dim)
  return x.astype(np.float32), y.astype(np.float32)


def _lse(s: np.ndarray, axis: int) -> np.ndarray:
  m = s.max(axis=axis, keepdims=True)
  return np.squeeze(m + np.log(np.exp(s - m).sum(axis=axis, keepdims=True)), axis)


def reference(x: np.ndarray, y: np.ndarray, symmetric: bool, rows: int = 2048):
  """float64 loss -I_NCE and its gradient (dx, dy), exactly, in row blocks.

  -I = -log K + (1/K) sum_i [lse_i - S_ii] (one direction), with
  dL/dx_i = (sum_j P_ij y_j - y_i) / K and dL/dy_j = (sum_i P_ij x_i - x_j) / K
  for P the row softmax; the symmetric loss averages it with the transpose.
  """
  x, y = x.astype(np.float64), y.astype(np.float64)
  k = x.shape[0]

  def one_way(a, b):            # rows a against columns b
    lse = np.empty(k)
    da, db = np.empty_like(a), np.zeros_like(b)
    for i in range(0, k, rows):
      s = a[i:i + rows] @ b.T
      lse[i:i + rows] = _lse(s, 1)
      p = np.exp(s - lse[i:i + rows, None])
      da[i:i + rows] = p @ b
      db += p.T @ a[i:i + rows]
    diag = np.sum(a * b, axis=1)
    loss = -np.log(k) + np.mean(lse - diag)
    return loss, (da - b) / k, (db - a) / k

  loss, dx, dy = one_way(x, y)
  if not symmetric:
    return loss, dx, dy
  loss_t, dy_t, dx_t = one_way(y, x)
  return 0.5 * (loss + loss_t), 0.5 * (dx + dx_t), 0.5 * (dy + dy_t)


def errors(x, y, dtype: str, symmetric: bool, block_size: int, ref=None) -> dict:
  """Relative errors of the streaming loss and gradient at ``dtype`` vs float64."""
  import jax  # pylint: disable=g-import-not-at-top

  from infomax_jax.bounds import streaming  # pylint: disable=g-import-not-at-top
  ref = ref or reference(x, y, symmetric)
  loss = lambda a, b: -streaming.infonce(a, b, symmetric=symmetric, block_size=block_size,
                                         matmul_dtype=dtype)
  t0 = time.perf_counter()
  value, (gx, gy) = jax.block_until_ready(
      jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, y))
  seconds = time.perf_counter() - t0
  g = np.concatenate([np.asarray(gx, np.float64).ravel(), np.asarray(gy, np.float64).ravel()])
  g_ref = np.concatenate([ref[1].ravel(), ref[2].ravel()])
  norm_ref = np.linalg.norm(g_ref)
  return {'dtype': dtype, 'symmetric': symmetric, 'loss': float(value),
          'loss_ref': float(ref[0]),
          'loss_rel_err': abs(float(value) - ref[0]) / abs(ref[0]),
          # the same error relative to the cross-entropy log K - I = loss + log K
          'ce_rel_err': abs(float(value) - ref[0]) / abs(ref[0] + np.log(x.shape[0])),
          'grad_norm_rel_err': abs(np.linalg.norm(g) - norm_ref) / norm_ref,
          'grad_rel_err': np.linalg.norm(g - g_ref) / norm_ref,
          'seconds_incl_compile': seconds}


def cached_reference(x, y, symmetric: bool, k: int):
  """``reference``, read from / written to ``--reference_cache`` when set."""
  if not _CACHE.value:
    return reference(x, y, symmetric)
  os.makedirs(_CACHE.value, exist_ok=True)
  path = os.path.join(_CACHE.value, f'ref_k{k}_d{_DIM.value}_s{_SCALE.value:g}_'
                      f'{"sym" if symmetric else "xy"}.npz')
  if os.path.exists(path):
    with np.load(path) as f:
      return float(f['loss']), f['dx'], f['dy']
  loss, dx, dy = reference(x, y, symmetric)
  np.savez(path, loss=loss, dx=dx, dy=dy)
  return loss, dx, dy


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  rows = []
  for k in map(int, _KS.value):
    x, y = embeddings(k, _DIM.value, _SCALE.value)
    for symmetric in [name == 'symmetric' for name in _DIRECTIONS.value]:
      t0 = time.perf_counter()
      ref = cached_reference(x, y, symmetric, k)
      print(f'K = {k}: float64 reference in {time.perf_counter() - t0:.1f} s', flush=True)
      for dtype in _DTYPES.value:
        row = {'k': k, **errors(x, y, dtype, symmetric, _BLOCK.value, ref)}
        rows.append(row)
        print(json.dumps(row), flush=True)
  print(f'\nd = {_DIM.value}, streaming block {_BLOCK.value}; errors relative to the '
        'float64 reference\n')
  print('| K | loss | matmul dtype | -I_NCE (float64) | loss rel. err | '
        'rel. to cross-entropy | grad-norm rel. err | grad rel. err | time (s) |')
  print('|---:|---|---|---:|---:|---:|---:|---:|---:|')
  for r in rows:
    print(f"| {r['k']} | {'symmetric' if r['symmetric'] else 'x → y'} | {r['dtype']} | "
          f"{r['loss_ref']:.6f} | {r['loss_rel_err']:.2e} | {r['ce_rel_err']:.2e} | "
          f"{r['grad_norm_rel_err']:.2e} | {r['grad_rel_err']:.2e} | "
          f"{r['seconds_incl_compile']:.1f} |")


if __name__ == '__main__':
  app.run(main)
