"""Row and column log-sum-exp of S = x y^T in a fused Pallas kernel (flash-attention style).

For a (K_x, d) x and a (K_y, d) y the kernel computes

    row_lse_i = log sum_j exp(S_ij),   col_lse_j = log sum_i exp(S_ij)

(optionally leaving out the pairs whose global indices are equal) without
writing S anywhere: each program of the grid owns ``block_rows`` rows of x,
keeps them on chip and walks over ``block_cols``-row blocks of y with an
online (running max, running sum) log-sum-exp; the score tile lives only in
registers / shared memory (Dao et al. 2022, FlashAttention; Milakov &
Gimelshein 2018). The column statistics are the row statistics of y x^T: the
same kernel with the roles swapped.

The backward pass is two more kernels of the same shape: for the cotangents
g_row, g_col,

    dS_ij = g_row_i exp(S_ij - row_lse_i) + g_col_j exp(S_ij - col_lse_j),
    dx = dS y,   dy = dS^T x,

each program recomputing its score tiles from x and y (one kernel gives dx
over row blocks of x, the same kernel with the roles swapped gives dy). The
score matmuls accumulate in float32; exponentials and sums are float32 for any
input dtype (float32, bfloat16, float16).

On GPU ``pallas_call`` lowers through Triton; on CPU pass ``interpret=True``
(the kernel then runs as ordinary JAX ops: correct, slow, for tests).
``infomax_jax.bounds.streaming`` uses it with ``implementation='pallas'``.
"""

import functools
from typing import Optional

import jax
from jax.experimental import pallas as pl
import jax.numpy as jnp

Array = jax.Array


def _pad_rows(a: Array, multiple: int) -> Array:
  k = a.shape[0]
  return jnp.pad(a, [(0, -k % multiple)] + [(0, 0)] * (a.ndim - 1))


def _out_shape(shape, *refs) -> jax.ShapeDtypeStruct:
  """A float32 output varying over the manual mesh axes the inputs vary on
  (inside ``jax.shard_map`` a ``pallas_call`` must say so)."""
  types = [getattr(jax.typeof(r), 'manual_axis_type', None) for r in refs]
  types = [t for t in types if t is not None]
  if not types or not any(t.varying for t in types):
    return jax.ShapeDtypeStruct(shape, jnp.float32)
  kept = max(types, key=lambda t: len(t.varying))
  return jax.ShapeDtypeStruct(shape, jnp.float32, manual_axis_type=kept)


def _keep(block_rows, block_cols, i, j, num_cols, delta, exclude_self):
  rows = i * block_rows + jax.lax.broadcasted_iota(jnp.int32, (block_rows, block_cols), 0)
  cols = j * block_cols + jax.lax.broadcasted_iota(jnp.int32, (block_rows, block_cols), 1)
  keep = cols < num_cols
  if exclude_self:               # global row == global column <=> row - col == delta
    keep = keep & (rows - cols != delta)
  return keep


def _lse_kernel(delta_ref, a_ref, b_ref, out_ref, *, block_rows, block_cols,
                num_cols, exclude_self, mm):
  """One row block of a against every column block of b: online log-sum-exp."""
  i = pl.program_id(0)
  a = a_ref[...].astype(mm)
  delta = delta_ref[0]

  def body(j, carry):
    m, l = carry
    b = b_ref[pl.ds(j * block_cols, block_cols), :].astype(mm)
    s = jnp.dot(a, b.T, preferred_element_type=jnp.float32)
    keep = _keep(block_rows, block_cols, i, j, num_cols, delta, exclude_self)
    s = jnp.where(keep, s, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(s, axis=1))
    shift = jnp.where(m_new > -jnp.inf, m_new, 0.0)
    l = l * jnp.exp(m - shift) + jnp.sum(jnp.exp(s - shift[:, None]), axis=1)
    return m_new, l

  init = (jnp.full((block_rows,), -jnp.inf, jnp.float32),
          jnp.zeros((block_rows,), jnp.float32))
  m, l = jax.lax.fori_loop(0, b_ref.shape[0] // block_cols, body, init)
  out_ref[...] = jnp.where(m > -jnp.inf, m, 0.0) + jnp.log(l)


def _grad_kernel(delta_ref, a_ref, b_ref, lse_a_ref, g_a_ref, lse_b_ref, g_b_ref,
                 out_ref, *, block_rows, block_cols, num_cols, exclude_self,
                 use_a, use_b, mm):
  """d(stats)/d a for one row block of a: sum over column blocks of dS b."""
  i = pl.program_id(0)
  a = a_ref[...].astype(mm)
  lse_a, g_a = lse_a_ref[...], g_a_ref[...]
  delta = delta_ref[0]

  def body(j, acc):
    cols = pl.ds(j * block_cols, block_cols)
    b = b_ref[cols, :].astype(mm)
    s = jnp.dot(a, b.T, preferred_element_type=jnp.float32)
    ds = jnp.zeros_like(s)
    if use_a:
      ds = ds + g_a[:, None] * jnp.exp(s - lse_a[:, None])
    if use_b:
      ds = ds + g_b_ref[cols][None, :] * jnp.exp(s - lse_b_ref[cols][None, :])
    keep = _keep(block_rows, block_cols, i, j, num_cols, delta, exclude_self)
    ds = jnp.where(keep, ds, 0.0)
    if b.dtype == jnp.float16:     # dS ~ 1/K^2 would flush to zero in float16
      return acc + jnp.dot(ds, b.astype(jnp.float32), preferred_element_type=jnp.float32)
    return acc + jnp.dot(ds.astype(b.dtype), b, preferred_element_type=jnp.float32)

  acc = jax.lax.fori_loop(0, b_ref.shape[0] // block_cols, body,
                          jnp.zeros(a.shape, jnp.float32))
  out_ref[...] = acc


def _row_lse(a, b, delta, *, block_rows, block_cols, exclude_self, interpret, mm):
  ka, kb, d = a.shape[0], b.shape[0], a.shape[1]
  a_p, b_p = _pad_rows(a, block_rows), _pad_rows(b, block_cols)
  kernel = functools.partial(_lse_kernel, block_rows=block_rows, block_cols=block_cols,
                             num_cols=kb, exclude_self=exclude_self, mm=mm)
  out = pl.pallas_call(
      kernel, grid=(a_p.shape[0] // block_rows,),
      in_specs=[pl.BlockSpec((1,), lambda i: (0,)),
                pl.BlockSpec((block_rows, d), lambda i: (i, 0)),
                pl.BlockSpec((b_p.shape[0], d), lambda i: (0, 0))],
      out_specs=pl.BlockSpec((block_rows,), lambda i: (i,)),
      out_shape=_out_shape((a_p.shape[0],), delta, a_p, b_p),
      interpret=interpret)(delta, a_p, b_p)
  return out[:ka]


def _row_grad(a, b, lse_a, g_a, lse_b, g_b, delta, *, use_a, use_b, block_rows,
              block_cols, exclude_self, interpret, mm):
  ka, kb, d = a.shape[0], b.shape[0], a.shape[1]
  a_p, b_p = _pad_rows(a, block_rows), _pad_rows(b, block_cols)
  vec_a = lambda v: _pad_rows(jnp.where(jnp.isfinite(v), v, 0.0), block_rows)
  vec_b = lambda v: _pad_rows(jnp.where(jnp.isfinite(v), v, 0.0), block_cols)
  kernel = functools.partial(_grad_kernel, block_rows=block_rows, block_cols=block_cols,
                             num_cols=kb, exclude_self=exclude_self, use_a=use_a,
                             use_b=use_b, mm=mm)
  row_spec = pl.BlockSpec((block_rows,), lambda i: (i,))
  all_spec = pl.BlockSpec((b_p.shape[0],), lambda i: (0,))
  out = pl.pallas_call(
      kernel, grid=(a_p.shape[0] // block_rows,),
      in_specs=[pl.BlockSpec((1,), lambda i: (0,)),
                pl.BlockSpec((block_rows, d), lambda i: (i, 0)),
                pl.BlockSpec((b_p.shape[0], d), lambda i: (0, 0)),
                row_spec, row_spec, all_spec, all_spec],
      out_specs=pl.BlockSpec((block_rows, d), lambda i: (i, 0)),
      out_shape=_out_shape(a_p.shape, delta, a_p, b_p, lse_a, g_a, lse_b, g_b),
      interpret=interpret)(delta, a_p, b_p, vec_a(lse_a), vec_a(g_a), vec_b(lse_b),
                           vec_b(g_b))
  return out[:ka]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7, 8, 9))
def _pairwise_lse(x, y, delta, rows, columns, exclude_self, block_rows, block_cols,
                  interpret, mm):
  return _forward(x, y, delta, rows, columns, exclude_self, block_rows, block_cols,
                  interpret, mm)


def _forward(x, y, delta, rows, columns, exclude_self, block_rows, block_cols, interpret,
             mm):
  kw = dict(exclude_self=exclude_self, interpret=interpret, mm=mm)
  empty = jnp.zeros((0,), jnp.float32)
  row = _row_lse(x, y, delta, block_rows=block_rows, block_cols=block_cols, **kw) \
      if rows else empty
  # Columns: the rows of y x^T, whose "row - col == delta" is "col - row == delta".
  col = _row_lse(y, x, -delta, block_rows=block_cols, block_cols=block_rows, **kw) \
      if columns else empty
  return row, col


def _fwd(x, y, delta, rows, columns, exclude_self, block_rows, block_cols, interpret, mm):
  out = _forward(x, y, delta, rows, columns, exclude_self, block_rows, block_cols,
                 interpret, mm)
  return out, (x, y, delta, out)


def _bwd(rows, columns, exclude_self, block_rows, block_cols, interpret, mm, res, ct):
  x, y, delta, (row, col) = res
  g_row, g_col = ct
  kx, ky = x.shape[0], y.shape[0]
  if not rows:
    row, g_row = jnp.zeros((kx,), jnp.float32), jnp.zeros((kx,), jnp.float32)
  if not columns:
    col, g_col = jnp.zeros((ky,), jnp.float32), jnp.zeros((ky,), jnp.float32)
  kw = dict(exclude_self=exclude_self, interpret=interpret, mm=mm)
  dx = _row_grad(x, y, row, g_row, col, g_col, delta, use_a=rows, use_b=columns,
                 block_rows=block_rows, block_cols=block_cols, **kw)
  dy = _row_grad(y, x, col, g_col, row, g_row, -delta, use_a=columns, use_b=rows,
                 block_rows=block_cols, block_cols=block_rows, **kw)
  return dx.astype(x.dtype), dy.astype(y.dtype), None


_pairwise_lse.defvjp(_fwd, _bwd)


def pairwise_lse(x: Array, y: Array, *, rows: bool = True, columns: bool = False,
                 exclude_self: bool = False, row_offset=0, col_offset=0,
                 block_rows: int = 128, block_cols: int = 128,
                 matmul_dtype=None,
                 interpret: Optional[bool] = None) -> tuple[Array, Array]:
  """(row_lse, col_lse) of S = x y^T by the fused kernel; differentiable.

  Args:
    x: (K_x, d) rows; y: (K_y, d) columns (same dtype).
    rows, columns: which statistics to compute (the other is an empty array).
    exclude_self: leave out the pairs with row_offset + i == col_offset + j.
    row_offset, col_offset: global indices of x[0] and y[0] (ints or traced
      int32 scalars, e.g. a device's offset in a sharded batch).
    block_rows, block_cols: the tile (rows of x per program, columns of y per
      loop step); powers of two >= 16 for the Triton lowering.
    matmul_dtype: dtype of the tile matmuls (default: x's); they accumulate
      in float32, and the gradients come back in x's and y's dtype.
    interpret: run the kernel as plain JAX ops (default: on any non-GPU
      backend).

  Returns:
    (row_lse (K_x,), col_lse (K_y,)) in float32; an unrequested one is empty.
  """
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
    raise ValueError(f'pairwise_lse: x and y must be (K, d) arrays with the same d, '
                     f'got shapes {x.shape} and {y.shape}')
  for name, b in (('block_rows', block_rows), ('block_cols', block_cols)):
    if not isinstance(b, int) or b < 1:
      raise ValueError(f'pairwise_lse: {name} must be a positive int, got {b!r}')
  if interpret is None:
    interpret = jax.default_backend() != 'gpu'
  dtype = jnp.promote_types(x.dtype, y.dtype)
  delta = jnp.reshape(jnp.asarray(col_offset, jnp.int32)
                      - jnp.asarray(row_offset, jnp.int32), (1,))
  mm = jnp.dtype(matmul_dtype or dtype).name
  d = x.shape[1]
  d_pad = max(16, _pow2_at_least(d)) - d   # Triton tiles: powers of two; zeros add 0
  x, y = (jnp.pad(a.astype(dtype), ((0, 0), (0, d_pad))) for a in (x, y))
  row, col = _pairwise_lse(x, y, delta, rows, columns, exclude_self,
                           min(block_rows, _pow2_at_least(x.shape[0])),
                           min(block_cols, _pow2_at_least(y.shape[0])), interpret, mm)
  return row, col


def _pow2_at_least(n: int) -> int:
  p = 1
  while p < n:
    p *= 2
  return p
