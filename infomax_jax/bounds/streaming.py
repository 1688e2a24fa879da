"""Blockwise (streaming) and sharded MI bounds on embeddings: K x K scores never stored.

For an inner-product critic f(x_i, y_j) = <x_i, y_j> (the bilinear critic is
x^T W y = <x W, y>, the separable critic <phi_1(x), phi_2(y)>, the cosine
critic <x/|x| / tau, y/|y|>), every bound of ``infomax_jax.bounds.core`` reduces to
a few statistics of the score matrix S = x y^T:

* the diagonal S_ii (O(K d), cheap);
* the log-sum-exp of each row, ``lse_j S_ij`` (InfoNCE), of each column
  (the y -> x direction of a symmetric, CLIP-style InfoNCE), or of each row
  without its diagonal entry (DV, NWJ, NT-Xent);
* the sum of softplus(S_ij) over the off-diagonal pairs (JSD).

``pairwise_statistics`` computes them in three ways, with identical values and
gradients (tests/test_parallel.py):

* dense (``block_size=None``): S is formed, autodiff does the rest; O(K^2)
  memory, the fastest for small K;
* streaming (``block_size=B``): a ``lax.scan`` over column blocks of y with an
  online log-sum-exp; a ``jax.custom_vjp`` makes the backward pass stream too
  (it recomputes each (K, B) score block from x and y instead of storing S:
  4 matmuls against dense's 3), so the peak memory is O(K B + K d), not O(K^2);
* sharded (``axis_name='data'``, inside ``jax.shard_map`` over a batch-sharded
  mesh, see ``infomax_jax.parallel.batch_shard_map``): each device holds its
  K/n rows; the columns (negatives) come from every device, either by one
  ``all_gather`` of y (``collective='all_gather'``) or by passing y blocks
  around a ring of ``ppermute`` (``collective='ring'``: device i sees device
  i-t's block at step t; column statistics travel with their block and come
  home after n steps). Either way each device's scores are computed densely or
  streamed (``block_size``); gradients flow back through the collectives. The
  ring has its own backward pass (a second ring carrying each block with its
  column statistics and its dy accumulator), so a device holds O(K/n d)
  embeddings and one (K/n, B) score block at any time: its memory falls as
  devices are added (benchmarks/large_batch_sharded_memory.py), where
  all_gather holds all K rows of y.

Precision: ``matmul_dtype='bfloat16'`` (or 'float16') runs every score matmul
in that dtype with float32 accumulation, and keeps the log-sum-exps, the
estimate and the gradients in float32 (tests/test_precision.py bounds the
error against float64). ``implementation='pallas'`` computes the row/column
log-sum-exps and their gradients in a fused kernel
(``infomax_jax.kernels.pairwise_lse``).

The bounds (``infonce``, ``symmetric`` InfoNCE, ``dv``, ``nwj``, ``jsd``,
``nt_xent``) take embeddings x, y of shape (K, d) (or a device's (K/n, d)
shard), return the estimate in nats (higher = more MI; the loss is its
negative), and match ``infomax_jax.bounds`` on ``scores = x @ y.T``.

``cosine_embeddings(x, y, temperature)`` turns any of them into the
cosine-similarity critic of SimCLR / CLIP (``infomax_jax.contrastive.Cosine``
is the Flax module, with a learned temperature).

References: van den Oord et al. 2018 (InfoNCE / CPC); Chen et al. 2020
(SimCLR, NT-Xent); Radford et al. 2021 (CLIP, symmetric loss, learned
temperature); Milakov & Gimelshein 2018, Rabe & Staats 2021, Dao et al. 2022
(online / memory-efficient softmax).
"""

import dataclasses
import functools
import math
from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from infomax_jax.bounds import core

Array = jax.Array

COLLECTIVES = ('all_gather', 'ring')
IMPLEMENTATIONS = ('xla', 'pallas')


class PairStats(NamedTuple):
  """Statistics of the scores S = x y^T of one set of rows against all columns.

  Attributes:
    row_lse: (K_x,) ``logsumexp_j S_ij`` over the columns j (without j = i when
      ``exclude_self``); an empty array when not requested.
    col_lse: (K_y,) ``logsumexp_i S_ij`` over the rows; empty when not requested.
    softplus_sum: () the sum of softplus(S_ij) over the pairs kept; 0 when not
      requested.
  """
  row_lse: Array
  col_lse: Array
  softplus_sum: Array


@dataclasses.dataclass(frozen=True)
class _Want:
  """Which statistics to compute (static; hashable for custom_vjp)."""
  rows: bool = True
  columns: bool = False
  softplus: bool = False
  exclude_self: bool = False
  kernel: bool = False          # implementation='pallas'
  mm: Optional[str] = None      # matmul dtype name; None: the inputs' dtype


# ------------------------------------------------------------- validation --

def _check_embeddings(x, y, fn: str, same_rows: bool = True) -> tuple[Array, Array]:
  for name, a in (('x', x), ('y', y)):
    if not hasattr(a, 'shape') or a.ndim != 2:
      raise ValueError(f'{fn}: {name} must be a 2-D (K, d) array of embeddings, '
                       f'got shape {getattr(a, "shape", type(a).__name__)}')
    if not jnp.issubdtype(a.dtype, jnp.floating):
      raise ValueError(f'{fn}: {name} must have a floating dtype, got {a.dtype}')
  if x.shape[1] != y.shape[1]:
    raise ValueError(f'{fn}: x and y need the same embedding dimension d, got '
                     f'shapes {x.shape} and {y.shape}')
  if same_rows and x.shape[0] != y.shape[0]:
    raise ValueError(f'{fn}: x and y must hold the same number of pairs K, got '
                     f'shapes {x.shape} and {y.shape}')
  dtype = jnp.promote_types(x.dtype, y.dtype)
  return x.astype(dtype), y.astype(dtype)


MATMUL_DTYPES = ('float32', 'bfloat16', 'float16')


def _matmul_dtype(matmul_dtype, fn: str):
  """None, or the jnp dtype named by ``matmul_dtype`` (one of ``MATMUL_DTYPES``)."""
  if matmul_dtype is None:
    return None
  try:
    name = jnp.dtype(matmul_dtype).name
  except TypeError:
    name = None
  if name not in MATMUL_DTYPES:
    raise ValueError(f'{fn}: matmul_dtype must be None or one of '
                     f'{", ".join(MATMUL_DTYPES)}, got {matmul_dtype!r}')
  return jnp.dtype(name)


def _check_options(block_size, collective, fn: str) -> None:
  if block_size is not None and (not isinstance(block_size, int)
                                 or isinstance(block_size, bool) or block_size < 1):
    raise ValueError(f'{fn}: block_size must be None (dense) or a positive int, '
                     f'got {block_size!r}')
  if collective not in COLLECTIVES:
    raise ValueError(f'{fn}: unknown collective {collective!r}; valid '
                     f'collectives are: {", ".join(COLLECTIVES)}')


# ------------------------------------------------------- local statistics --

def _safe(a: Array) -> Array:
  return jnp.where(jnp.isfinite(a), a, 0.0)


def _varying_axes(a) -> set:
  aval = jax.typeof(a)
  if hasattr(aval, 'manual_axis_type'):        # JAX >= 0.10
    return set(aval.manual_axis_type.varying)
  return set(getattr(aval, 'vma', ()))         # JAX <= 0.9


def _varying_like(value, *refs):
  """``value`` marked as varying over the manual mesh axes that ``refs`` vary on.

  Inside ``jax.shard_map`` a scan carry must have the same per-device type
  before and after the body; constants start out device-invariant.
  """
  axes = set()
  for r in refs:
    axes |= _varying_axes(r)
  if not axes:
    return value
  return jax.tree.map(
      lambda v: jax.lax.pcast(v, tuple(sorted(axes)), to='varying'), value)


def _round(a: Array, dtype) -> Array:
  """``a`` rounded to ``dtype`` but kept in its own dtype, with an identity gradient.

  The value is exactly representable in ``dtype`` (so the later cast for the
  matmul is exact), while the gradient stays in ``a``'s precision: the
  cotangents of rows x and of the diagonal add up in float32, not in bf16.
  """
  if dtype is None or a.dtype == dtype:
    return a
  return a + jax.lax.stop_gradient(a.astype(dtype).astype(a.dtype) - a)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _scores(x: Array, y: Array, mm: str) -> Array:
  """x y^T with both cast to ``mm``, accumulated in float32; gradients in x's dtype."""
  return jnp.dot(x.astype(mm), y.astype(mm).T, preferred_element_type=jnp.float32)


def _scores_fwd(x, y, mm):
  return _scores(x, y, mm), (x, y)


def _scores_bwd(mm, residuals, ct):
  x, y = residuals
  return (_product(ct, y, mm).astype(x.dtype), _product(ct.T, x, mm).astype(y.dtype))


_scores.defvjp(_scores_fwd, _scores_bwd)


def _masked_scores(x: Array, yb: Array, row_ids: Array, col_ids: Array,
                   valid: Optional[Array], want: _Want) -> tuple[Array, Array]:
  """Scores of rows x against columns yb in float32, and the mask of kept pairs."""
  if want.mm is None:
    s = jnp.dot(x, yb.T, preferred_element_type=jnp.float32)
  else:
    s = _scores(x, yb, want.mm)
  # keep is None when every pair is kept: no (K, B) mask at all. (A mask that
  # depends on the block index alone would be hoisted out of an enclosing
  # differentiated scan, the ring, and stacked for every block: O(K^2).)
  keep = None
  if valid is not None:
    keep = jnp.broadcast_to(valid[None, :], s.shape)
  if want.exclude_self:
    other = row_ids[:, None] != col_ids[None, :]
    keep = other if keep is None else keep & other
  return s, keep


def _where(keep: Optional[Array], a: Array, fill) -> Array:
  return a if keep is None else jnp.where(keep, a, fill)


def _lse(s: Array, keep: Array, axis: int) -> Array:
  """log-sum-exp over ``axis`` of the kept entries; -inf where none is kept."""
  # Masked entries are -inf *before* exp: exp of a large left-out score (a
  # positive pair) must not overflow, or its zero cotangent would become NaN.
  s = _where(keep, s, -jnp.inf)
  m = jax.lax.stop_gradient(_safe(jnp.max(s, axis=axis, keepdims=True)))
  return jnp.squeeze(m + jnp.log(jnp.sum(jnp.exp(s - m), axis=axis,
                                         keepdims=True)), axis)


def _dense_stats(x, y, row_offset, col_offset, want: _Want) -> PairStats:
  """All statistics from the full score matrix (autodiff for the gradient)."""
  row_ids = row_offset + jnp.arange(x.shape[0])
  col_ids = col_offset + jnp.arange(y.shape[0])
  s, keep = _masked_scores(x, y, row_ids, col_ids, None, want)
  empty = jnp.zeros((0,), jnp.float32)
  return PairStats(
      _lse(s, keep, 1) if want.rows else empty,
      _lse(s, keep, 0) if want.columns else empty,
      (jnp.sum(_where(keep, jax.nn.softplus(s), 0.0)) if want.softplus
       else jnp.zeros((), jnp.float32)))


def _blocks(y: Array, block_size: int) -> tuple[Array, int]:
  """y padded with zero rows to a multiple of the block size, as (nb, B, d)."""
  k, d = y.shape
  nb = -(-k // block_size)
  y = jnp.pad(y, ((0, nb * block_size - k), (0, 0)))
  return y.reshape(nb, block_size, d), nb


def _streaming_forward(x, y, row_offset, col_offset, want: _Want, block_size: int):
  kx, ky = x.shape[0], y.shape[0]
  yb, nb = _blocks(y, block_size)
  row_ids = row_offset + jnp.arange(kx)
  padded = ky % block_size != 0

  # The block index b is carried, not scanned over (see _masked_scores).
  def body(carry, y_blk):
    m, l, sp, b = carry
    local = b * block_size + jnp.arange(block_size)
    s, keep = _masked_scores(x, y_blk, row_ids, col_offset + local,
                             local < ky if padded else None, want)
    col = jnp.zeros((0,), jnp.float32)
    if want.rows:                       # online log-sum-exp along the row
      sm = _where(keep, s, -jnp.inf)
      m_new = jnp.maximum(m, jnp.max(sm, axis=1))
      shift = _safe(m_new)
      l = l * jnp.exp(m - shift) + jnp.sum(jnp.exp(sm - shift[:, None]), axis=1)
      m = m_new
    if want.columns:                    # a block holds every row of its columns
      col = _lse(s, keep, 0)
    if want.softplus:
      sp = sp + jnp.sum(_where(keep, jax.nn.softplus(s), 0.0))
    return (m, l, sp, b + 1), col

  init = _varying_like(
      (jnp.full((kx,), -jnp.inf, jnp.float32), jnp.zeros((kx,), jnp.float32),
       jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)), x, y, row_offset,
      col_offset)
  (m, l, sp, _), col = jax.lax.scan(body, init, yb)
  empty = jnp.zeros((0,), jnp.float32)
  return PairStats(
      _safe(m) + jnp.log(l) if want.rows else empty,
      col.reshape(-1)[:ky] if want.columns else empty,
      sp)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _streaming_stats(x, y, row_offset, col_offset, want: _Want,
                     block_size: int) -> PairStats:
  return _streaming_forward(x, y, row_offset, col_offset, want, block_size)


def _streaming_fwd(x, y, row_offset, col_offset, want, block_size):
  stats = _streaming_forward(x, y, row_offset, col_offset, want, block_size)
  return stats, (x, y, row_offset, col_offset, stats)


# float16 holds 2^-24 ... 65504: the score gradients dS_ij (softmax weights times
# 1/K, about 1/K^2) would flush to zero. Each row of dS is scaled by a power of
# two that brings its largest entry to 2^FP16_EXPONENT before the cast (exact:
# only the exponent changes) and the float32 product is scaled back.
FP16_EXPONENT = 14


def _product(ds: Array, b: Array, mm: Optional[str] = None) -> Array:
  """ds @ b in float32, with ds (float32) and b cast to ``mm`` (default b's dtype)."""
  b = b.astype(mm or b.dtype)
  if b.dtype != jnp.float16:
    return jnp.dot(ds.astype(b.dtype), b, preferred_element_type=jnp.float32)
  peak = jnp.max(jnp.abs(ds), axis=1, keepdims=True)
  _, e = jnp.frexp(jnp.where(peak > 0, peak, 1.0))      # peak < 2^e
  scale = jnp.ldexp(jnp.ones_like(peak), FP16_EXPONENT - e)
  out = jnp.dot((ds * scale).astype(jnp.float16), b, preferred_element_type=jnp.float32)
  return out / scale


def _streaming_bwd(want, block_size, residuals, cotangent):
  """Recomputes each score block; d S_ij = g_i softmax_row + g_j softmax_col + g sigmoid."""
  x, y, row_offset, col_offset, stats = residuals
  g = cotangent
  kx, ky = x.shape[0], y.shape[0]
  yb, nb = _blocks(y, block_size)
  row_ids = row_offset + jnp.arange(kx)
  pad = nb * block_size - ky
  padded = pad != 0
  col_lse = jnp.pad(_safe(stats.col_lse), (0, pad)).reshape(nb, block_size) \
      if want.columns else jnp.zeros((nb, 0))
  g_col = jnp.pad(g.col_lse, (0, pad)).reshape(nb, block_size) \
      if want.columns else jnp.zeros((nb, 0))
  row_lse = _safe(stats.row_lse)

  def body(carry, inputs):
    dx, b = carry                       # the block index: see _streaming_forward
    y_blk, col_lse_b, g_col_b = inputs
    local = b * block_size + jnp.arange(block_size)
    s, keep = _masked_scores(x, y_blk, row_ids, col_offset + local,
                             local < ky if padded else None, want)
    ds = jnp.zeros_like(s)
    if want.rows:
      ds = ds + g.row_lse[:, None] * jnp.exp(s - row_lse[:, None])
    if want.columns:
      ds = ds + g_col_b[None, :] * jnp.exp(s - col_lse_b[None, :])
    if want.softplus:
      ds = ds + g.softplus_sum * jax.nn.sigmoid(s)
    ds = _where(keep, ds, 0.0)
    return (dx + _product(ds, y_blk, want.mm), b + 1), _product(ds.T, x, want.mm)

  init = _varying_like((jnp.zeros(x.shape, jnp.float32), jnp.zeros((), jnp.int32)),
                       x, y, row_offset, col_offset, g.row_lse, g.col_lse)
  (dx, _), dyb = jax.lax.scan(body, init, (yb, col_lse, g_col))
  dy = dyb.reshape(-1, y.shape[1])[:ky]
  return dx.astype(x.dtype), dy.astype(y.dtype), None, None


_streaming_stats.defvjp(_streaming_fwd, _streaming_bwd)


def _local_stats(x, y, row_offset, col_offset, want: _Want,
                 block_size: Optional[int]) -> PairStats:
  if want.kernel:
    from infomax_jax import kernels  # pylint: disable=g-import-not-at-top
    tile = block_size or 128
    row, col = kernels.pairwise_lse(
        x, y, rows=want.rows, columns=want.columns, exclude_self=want.exclude_self,
        row_offset=row_offset, col_offset=col_offset, block_rows=tile, block_cols=tile,
        matmul_dtype=want.mm)
    return PairStats(row, col, _varying_like(jnp.zeros((), jnp.float32), x, y))
  if block_size is None:
    return _dense_stats(x, y, row_offset, col_offset, want)
  block_size = min(block_size, y.shape[0])
  return _streaming_stats(x, y, jnp.asarray(row_offset, jnp.int32),
                          jnp.asarray(col_offset, jnp.int32), want, block_size)


# ----------------------------------------------------- sharded statistics --

def _psum_logsumexp(a: Array, axis_name: str) -> Array:
  """log sum over devices of exp(a), elementwise and stably."""
  m = jax.lax.stop_gradient(jax.lax.pmax(jax.lax.stop_gradient(a), axis_name))
  m = _safe(m)
  return m + jnp.log(jax.lax.psum(jnp.exp(a - m), axis_name))


def _sharded_stats(x, y, want: _Want, block_size, axis_name: str,
                   collective: str) -> PairStats:
  """Statistics of this device's rows against the columns of every device.

  ``col_lse`` is returned for this device's own columns, over every row.
  """
  i = jax.lax.axis_index(axis_name)
  k = x.shape[0]
  if collective == 'all_gather':
    y_all = jax.lax.all_gather(y, axis_name, tiled=True)        # (n k, d)
    stats = _local_stats(x, y_all, i * k, 0, want, block_size)
    col = stats.col_lse
    if want.columns:                    # partial over my rows -> over all rows
      col = jax.lax.dynamic_slice_in_dim(_psum_logsumexp(col, axis_name), i * k, k)
    sp = jax.lax.psum(stats.softplus_sum, axis_name) if want.softplus \
        else stats.softplus_sum
    return PairStats(stats.row_lse, col, sp)

  stats = _ring_stats(x, y, want, block_size, axis_name)
  sp = jax.lax.psum(stats.softplus_sum, axis_name) if want.softplus \
      else stats.softplus_sum
  return PairStats(stats.row_lse, stats.col_lse, sp)


def _ring_forward(x, y, want: _Want, block_size, axis_name: str) -> PairStats:
  """The ring: after t shifts, device i holds the y block of device (i - t) mod n.

  Column statistics travel with their block and come home after n shifts;
  ``softplus_sum`` is this device's rows' (summed over devices by the caller).
  """
  n = jax.lax.axis_size(axis_name)
  i = jax.lax.axis_index(axis_name)
  k = x.shape[0]
  perm = [(j, (j + 1) % n) for j in range(n)]
  first = _local_stats(x, y, i * k, i * k, want, block_size)

  def body(carry, t):
    y_blk, row, col, sp = carry
    y_blk = jax.lax.ppermute(y_blk, axis_name, perm)
    if want.columns:
      col = jax.lax.ppermute(col, axis_name, perm)
    owner = (i - t) % n
    stats = _local_stats(x, y_blk, i * k, owner * k, want, block_size)
    if want.rows:
      row = jnp.logaddexp(row, stats.row_lse)
    if want.columns:
      col = jnp.logaddexp(col, stats.col_lse)
    return (y_blk, row, col, sp + stats.softplus_sum), None

  carry = (y, first.row_lse, first.col_lse, first.softplus_sum)
  (_, row, col, sp), _ = jax.lax.scan(body, carry, jnp.arange(1, n))
  if want.columns:                      # the accumulators come home
    col = jax.lax.ppermute(col, axis_name, perm)
  return PairStats(row, col, sp)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _ring_stats(x, y, want: _Want, block_size, axis_name: str) -> PairStats:
  return _ring_forward(x, y, want, block_size, axis_name)


def _ring_fwd(x, y, want, block_size, axis_name):
  stats = _ring_forward(x, y, want, block_size, axis_name)
  return stats, (x, y, stats)


def _ring_bwd(want, block_size, axis_name, residuals, g):
  """A second ring: each y block travels again with its column statistics,
  their cotangents and its dy accumulator; every device adds its rows' share.

  Autodiff of the forward ring would keep every visited y block for the
  backward pass (O(K d) per device); this keeps O(K/n d): the blocks are
  passed around again instead (as Inf-CL's backward ring does).
  """
  x, y, stats = residuals
  n = jax.lax.axis_size(axis_name)
  i = jax.lax.axis_index(axis_name)
  k = x.shape[0]
  perm = [(j, (j + 1) % n) for j in range(n)]
  bs = min(block_size or k, k)
  empty = jnp.zeros((0,), jnp.float32)

  def local(y_blk, owner, col_b, g_col_b):
    # With the global normalisers the streaming backward pass of one (x, y_blk)
    # pair is exactly this pair's share of the gradient.
    return _streaming_bwd(
        dataclasses.replace(want, kernel=False), bs,
        (x, y_blk, i * k, owner * k, PairStats(stats.row_lse, col_b, empty)),
        PairStats(g.row_lse, g_col_b, g.softplus_sum))[:2]

  dx, dy_acc = local(y, i, stats.col_lse, g.col_lse)

  def body(carry, t):
    dx, y_blk, col_b, g_col_b, dy_acc = carry
    y_blk, col_b, g_col_b, dy_acc = jax.lax.ppermute(
        (y_blk, col_b, g_col_b, dy_acc), axis_name, perm)
    dx_t, dy_t = local(y_blk, (i - t) % n, col_b, g_col_b)
    return (dx + dx_t, y_blk, col_b, g_col_b, dy_acc + dy_t), None

  carry = jax.tree.map(
      lambda v: v if _varying_axes(v) >= _varying_axes(x) else _varying_like(v, x),
      (dx.astype(jnp.float32), y, stats.col_lse, g.col_lse, dy_acc.astype(jnp.float32)))
  (dx, _, _, _, dy_acc), _ = jax.lax.scan(body, carry, jnp.arange(1, n))
  dy = jax.lax.ppermute(dy_acc, axis_name, perm)          # home to the owner
  return dx.astype(x.dtype), dy.astype(y.dtype)


_ring_stats.defvjp(_ring_fwd, _ring_bwd)


def pairwise_statistics(x: Array, y: Array, *, rows: bool = True,
                        columns: bool = False, softplus: bool = False,
                        exclude_self: bool = False,
                        block_size: Optional[int] = None,
                        axis_name: Optional[str] = None,
                        collective: str = 'all_gather',
                        matmul_dtype=None, implementation: str = 'xla') -> PairStats:
  """Row/column log-sum-exps and the softplus sum of S = x y^T, without storing S.

  Args:
    x: (K_x, d) rows (a device's shard when ``axis_name`` is given).
    y: (K_y, d) columns (likewise; the statistics run over every device's y).
    rows: compute ``row_lse``.
    columns: compute ``col_lse``.
    softplus: compute ``softplus_sum`` (summed over all devices when sharded).
    exclude_self: leave out the pairs whose global row and column indices are
      equal (the positive pairs when x and y are aligned).
    block_size: None for the dense computation, or B to stream over column
      blocks of B (the last one may be partial) with O(K_x B) memory.
    axis_name: the mesh axis the batch is sharded over, inside
      ``jax.shard_map``; None on a single device.
    collective: 'all_gather' or 'ring' (see the module docstring).
    matmul_dtype: None (the inputs' dtype), 'float32', 'bfloat16' or
      'float16': x and y are cast to it for the score matmuls, which
      accumulate in float32; the log-sum-exps are float32 whatever the dtype
      (see ``infonce``).
    implementation: 'xla' (dense or ``lax.scan`` streaming, above) or
      'pallas': the fused kernel ``infomax_jax.kernels.pairwise_lse`` (score
      tiles of ``block_size`` (default 128) never leave the chip; Triton on
      GPU, interpret mode elsewhere); row/column statistics only, no
      ``softplus``.

  Returns:
    A ``PairStats``; float32 for float32/bfloat16/float16 inputs.
  """
  x, y = _check_embeddings(x, y, 'pairwise_statistics', same_rows=False)
  _check_options(block_size, collective, 'pairwise_statistics')
  dtype = _matmul_dtype(matmul_dtype, 'pairwise_statistics')
  x, y = _round(x, dtype), _round(y, dtype)
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'pairwise_statistics: unknown implementation {implementation!r}; '
                     f'valid implementations are: {", ".join(IMPLEMENTATIONS)}')
  if implementation == 'pallas' and softplus:
    raise ValueError("pairwise_statistics: implementation='pallas' computes the "
                     "log-sum-exps only, got softplus=True (use 'xla')")
  if implementation == 'pallas' and axis_name is not None and jax.default_backend() != 'gpu':
    # Pallas's interpreter trips the shard_map varying-axes check (JAX 0.10).
    raise ValueError("pairwise_statistics: implementation='pallas' inside shard_map "
                     f"needs a GPU (the {jax.default_backend()} backend runs the kernel "
                     "in interpret mode, which shard_map rejects); use 'xla'")
  want = _Want(rows, columns, softplus, exclude_self, implementation == 'pallas',
               None if dtype is None or dtype == x.dtype == y.dtype else dtype.name)
  if axis_name is None:
    return _local_stats(x, y, 0, 0, want, block_size)
  return _sharded_stats(x, y, want, block_size, axis_name, collective)


# ---------------------------------------------------------------- bounds --

def _global_count(x: Array, axis_name: Optional[str]) -> int:
  n = 1 if axis_name is None else jax.lax.axis_size(axis_name)
  return x.shape[0] * n


def _global_mean(v: Array, k_global: int, axis_name: Optional[str]) -> Array:
  total = jnp.sum(v)
  if axis_name is not None:
    total = jax.lax.psum(total, axis_name)
  return total / k_global


def _global_logsumexp(v: Array, axis_name: Optional[str]) -> Array:
  local = jax.nn.logsumexp(v)
  return local if axis_name is None else _psum_logsumexp(local, axis_name)


def _diagonal(x: Array, y: Array) -> Array:
  """S_ii = <x_i, y_i> in float32."""
  return jnp.sum(x.astype(jnp.float32) * y.astype(jnp.float32), axis=1)


def _prepare(x, y, block_size, axis_name, collective, fn, matmul_dtype=None):
  x, y = _check_embeddings(x, y, fn)
  _check_options(block_size, collective, fn)
  dtype = _matmul_dtype(matmul_dtype, fn)
  x, y = _round(x, dtype), _round(y, dtype)   # the diagonal sees the rounded values
  k = _global_count(x, axis_name)
  if k < 2:
    raise ValueError(f'{fn}: need K >= 2 pairs in the (global) batch, got K = {k}')
  return x, y, k


def infonce(x: Array, y: Array, *, symmetric: bool = False,
            block_size: Optional[int] = None, axis_name: Optional[str] = None,
            collective: str = 'all_gather', matmul_dtype=None,
            implementation: str = 'xla') -> Array:
  """InfoNCE with the inner-product critic f(x_i, y_j) = <x_i, y_j>.

      I_NCE = log K + (1/K) sum_i [S_ii - logsumexp_j S_ij]            (x -> y)

  and with ``symmetric`` the CLIP-style average of both directions,

      log K + (1/K) sum_i [S_ii - (logsumexp_j S_ij + logsumexp_j S_ji) / 2].

  Equals ``bounds.infonce(x @ y.T)`` (and ``(bounds.infonce(S) +
  bounds.infonce(S.T)) / 2``); both are at most log K.

  Args:
    x: (K, d) embeddings of the first view (scale by 1/temperature first for
      a temperature), or a device's (K/n, d) shard when ``axis_name`` is set.
    y: (K, d) embeddings of the second view, aligned with x.
    symmetric: average the x -> y and y -> x directions (one pass: each score
      block serves both).
    block_size: None (dense) or the column block of the streaming form.
    axis_name: mesh axis of the batch inside ``jax.shard_map`` (negatives from
      every device); None on one device.
    collective: 'all_gather' or 'ring'.
    matmul_dtype: None (the inputs' dtype) or 'float32' / 'bfloat16' /
      'float16': x and y are rounded to it for every score (diagonal
      included) and every matmul runs in it, accumulating in float32; the
      log-sum-exps, the mean and the returned value are float32, and so are
      the gradients (they flow back to x and y in the inputs' dtype, without
      a round trip through bf16). The backward matmuls cast the score
      gradients to it too (float16: each row scaled by a power of two first,
      so that the ~1/K^2 entries do not flush to zero).
      Measured errors against float64: tests/test_precision.py.
    implementation: 'xla' or 'pallas' (the fused kernel; see
      ``pairwise_statistics``).

  Returns:
    Scalar estimate in nats (replicated over ``axis_name``).
  """
  x, y, k = _prepare(x, y, block_size, axis_name, collective, 'infonce',
                     matmul_dtype)
  stats = pairwise_statistics(x, y, rows=True, columns=symmetric,
                              block_size=block_size, axis_name=axis_name,
                              collective=collective, matmul_dtype=matmul_dtype,
                              implementation=implementation)
  lse = stats.row_lse if not symmetric else 0.5 * (stats.row_lse + stats.col_lse)
  return math.log(k) + _global_mean(_diagonal(x, y) - lse, k, axis_name)


def _marginal_logmeanexp(x, y, k, block_size, axis_name, collective,
                         matmul_dtype=None) -> Array:
  """log E_M[e^f] over the K(K-1) off-diagonal pairs."""
  stats = pairwise_statistics(x, y, rows=True, exclude_self=True,
                              block_size=block_size, axis_name=axis_name,
                              collective=collective, matmul_dtype=matmul_dtype)
  return _global_logsumexp(stats.row_lse, axis_name) - math.log(k * (k - 1.0))


def dv(x: Array, y: Array, *, block_size: Optional[int] = None,
       axis_name: Optional[str] = None, collective: str = 'all_gather',
       matmul_dtype=None) -> Array:
  """Donsker-Varadhan bound E_J[f] - log E_M[e^f] with f = <x, y>.

  Equals ``bounds.dv(x @ y.T)``. Arguments (``matmul_dtype`` too) as ``infonce``.
  """
  x, y, k = _prepare(x, y, block_size, axis_name, collective, 'dv',
                     matmul_dtype)
  joint = _global_mean(_diagonal(x, y), k, axis_name)
  return joint - _marginal_logmeanexp(x, y, k, block_size, axis_name, collective,
                                      matmul_dtype)


def nwj(x: Array, y: Array, *, block_size: Optional[int] = None,
        axis_name: Optional[str] = None, collective: str = 'all_gather',
        matmul_dtype=None) -> Array:
  """NWJ bound E_J[f] - E_M[e^{f - 1}] with f = <x, y>.

  Equals ``bounds.nwj(x @ y.T)`` (the same saturating exponential above
  e^60). Arguments (``matmul_dtype`` too) as ``infonce``.
  """
  x, y, k = _prepare(x, y, block_size, axis_name, collective, 'nwj',
                     matmul_dtype)
  joint = _global_mean(_diagonal(x, y), k, axis_name)
  lme = _marginal_logmeanexp(x, y, k, block_size, axis_name, collective, matmul_dtype)
  return joint - core.exp_saturating(lme - 1.0)


def jsd(x: Array, y: Array, *, block_size: Optional[int] = None,
        axis_name: Optional[str] = None, collective: str = 'all_gather',
        matmul_dtype=None) -> Array:
  """Jensen-Shannon proxy of DIM, E_J[-sp(-f)] - E_M[sp(f)], with f = <x, y>.

  Equals ``bounds.jsd(x @ y.T)``. Arguments (``matmul_dtype`` too) as ``infonce``.
  """
  x, y, k = _prepare(x, y, block_size, axis_name, collective, 'jsd',
                     matmul_dtype)
  stats = pairwise_statistics(x, y, rows=False, softplus=True, exclude_self=True,
                              block_size=block_size, axis_name=axis_name,
                              collective=collective, matmul_dtype=matmul_dtype)
  joint = _global_mean(-jax.nn.softplus(-_diagonal(x, y)), k, axis_name)
  return joint - stats.softplus_sum / (k * (k - 1.0))


def nt_xent(x: Array, y: Array, temperature: Union[float, Array] = 0.1, *,
            block_size: Optional[int] = None, axis_name: Optional[str] = None,
            collective: str = 'all_gather', matmul_dtype=None) -> Array:
  """SimCLR's NT-Xent as an MI estimate: 2K views, 2K - 2 negatives each.

  With z = [x; y] normalised to the unit sphere (z_i and its other view z_p(i)
  a positive pair) and s_ij = <z_i, z_j> / temperature,

      I = log(2K - 1) + (1/2K) sum_i [s_i,p(i) - logsumexp_{j != i} s_ij],

  at most log(2K - 1); the SimCLR loss (Chen et al. 2020, Eq. 1) is
  log(2K - 1) - I. When sharded, each device's z is its own [x; y] shard.

  Args:
    x: (K, d) embeddings of the first view (or a device's shard).
    y: (K, d) embeddings of the second view.
    temperature: tau > 0, a float or a traced scalar (learned).
    block_size, axis_name, collective, matmul_dtype: as ``infonce`` (the
      normalised, temperature-scaled embeddings are rounded to
      ``matmul_dtype``).

  Returns:
    Scalar estimate in nats.
  """
  x, y, k = _prepare(x, y, block_size, axis_name, collective, 'nt_xent')
  dtype = _matmul_dtype(matmul_dtype, 'nt_xent')
  if isinstance(temperature, (int, float)) and not temperature > 0:
    raise ValueError(f'nt_xent: temperature must be > 0, got {temperature}')
  x, y = _normalize(x), _normalize(y)
  z = jnp.concatenate([x, y], axis=0)
  zs = z / jnp.asarray(temperature, z.dtype)
  zs, z = _round(zs, dtype), _round(z, dtype)
  stats = pairwise_statistics(zs, z, rows=True, exclude_self=True,
                              block_size=block_size, axis_name=axis_name,
                              collective=collective, matmul_dtype=matmul_dtype)
  positive = _diagonal(zs, jnp.roll(z, x.shape[0], axis=0))
  return math.log(2 * k - 1) + _global_mean(positive - stats.row_lse, 2 * k,
                                            axis_name)


# ------------------------------------------------------ cosine critic ----

def _normalize(v: Array, eps: float = 1e-6) -> Array:
  v32 = v.astype(jnp.float32)
  norm = jnp.sqrt(jnp.sum(v32 * v32, axis=-1, keepdims=True) + eps**2)
  return (v32 / norm).astype(v.dtype)


def cosine_embeddings(x: Array, y: Array,
                      temperature: Union[float, Array] = 0.1) -> tuple[Array, Array]:
  """Embeddings whose inner product is the cosine critic cos(x_i, y_j) / tau.

  Returns (x / |x| / tau, y / |y|); feed them to ``infonce`` (or any bound of
  this module). ``temperature`` may be a traced scalar (learned).
  """
  x, y = _check_embeddings(x, y, 'cosine_embeddings', same_rows=False)
  if isinstance(temperature, (int, float)) and not temperature > 0:
    raise ValueError(f'cosine_embeddings: temperature must be > 0, got '
                     f'{temperature}')
  return _normalize(x) / jnp.asarray(temperature, x.dtype), _normalize(y)


def default_block_size(num_rows: int, budget_bytes: int = 64 * 2**20) -> int:
  """The largest power-of-two column block (128 ... 8192) whose (num_rows, B)
  float32 score block fits in ``budget_bytes``."""
  b = 128
  while b < 8192 and num_rows * (2 * b) * 4 <= budget_bytes:
    b *= 2
  return b
