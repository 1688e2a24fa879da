"""infomax_jax.kernels: the fused Pallas log-sum-exp kernel, in interpret mode on CPU.

References: dense log-sum-exps of x @ y.T in float64 (values and ``jax.grad``)
and the existing XLA streaming path of ``bounds.streaming``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import bounds
from infomax_jax import kernels
from infomax_jax import parallel
from infomax_jax.bounds import streaming


def _x64():
  if hasattr(jax, 'enable_x64'):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


def _data(kx=100, ky=70, d=16):
  kx_, ky_ = jax.random.split(jax.random.PRNGKey(0))
  return jax.random.normal(kx_, (kx, d)), jax.random.normal(ky_, (ky, d))


def _dense_lse64(x, y, exclude_self, row_offset, col_offset):
  with _x64():
    s = jnp.asarray(x, jnp.float64) @ jnp.asarray(y, jnp.float64).T
    if exclude_self:
      same = ((row_offset + jnp.arange(x.shape[0]))[:, None]
              == (col_offset + jnp.arange(y.shape[0]))[None, :])
      s = jnp.where(same, -jnp.inf, s)
    return jax.nn.logsumexp(s, 1), jax.nn.logsumexp(s, 0)


@pytest.mark.parametrize('exclude_self,row_offset,col_offset',
                         [(False, 0, 0), (True, 5, 0),
                          pytest.param(True, 0, 0, marks=pytest.mark.slow),
                          pytest.param(True, 0, 40, marks=pytest.mark.slow)])
def test_values_and_gradients_match_dense_float64(exclude_self, row_offset, col_offset):
  x, y = _data()                 # 100 x 70: partial last tiles in both directions
  w_row = jax.random.normal(jax.random.PRNGKey(2), (100,))
  w_col = jax.random.normal(jax.random.PRNGKey(3), (70,))
  kw = dict(exclude_self=exclude_self, row_offset=row_offset, col_offset=col_offset)

  def fused(x, y):
    row, col = kernels.pairwise_lse(x, y, rows=True, columns=True, block_rows=32,
                                    block_cols=16, interpret=True, **kw)
    return jnp.sum(row * w_row) + jnp.sum(col * w_col), (row, col)

  (_, (row, col)), grads = jax.value_and_grad(fused, argnums=(0, 1), has_aux=True)(x, y)
  ref_row, ref_col = _dense_lse64(x, y, exclude_self, row_offset, col_offset)
  np.testing.assert_allclose(row, ref_row, rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(col, ref_col, rtol=1e-6, atol=1e-5)
  with _x64():
    def dense(x, y):
      r, c = _dense_lse64(x, y, exclude_self, row_offset, col_offset)
      return jnp.sum(r * w_row) + jnp.sum(c * w_col)
    ref_grads = jax.grad(dense, argnums=(0, 1))(jnp.asarray(x, jnp.float64),
                                                jnp.asarray(y, jnp.float64))
  for g, r in zip(grads, ref_grads):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_rows_only_and_columns_only():
  x, y = _data(64, 48)
  row, col = kernels.pairwise_lse(x, y, rows=True, columns=False, block_rows=16,
                                  block_cols=16, interpret=True)
  assert col.shape == (0,)
  np.testing.assert_allclose(row, _dense_lse64(x, y, False, 0, 0)[0], rtol=1e-6, atol=1e-5)
  g = jax.grad(lambda y: jnp.sum(kernels.pairwise_lse(
      x, y, rows=False, columns=True, block_rows=16, block_cols=16, interpret=True)[1]))(y)
  with _x64():
    ref = jax.grad(lambda y: jnp.sum(jax.nn.logsumexp(
        jnp.asarray(x, jnp.float64) @ y.T, axis=0)))(jnp.asarray(y, jnp.float64))
  np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('symmetric', [False, True])
def test_infonce_pallas_equals_xla_streaming_and_dense(symmetric):
  x, y = _data(96, 96)
  y = 0.7 * x + 0.5 * y
  loss = lambda impl, bs: lambda a, b: streaming.infonce(
      a, b, symmetric=symmetric, block_size=bs, implementation=impl)
  v_p, g_p = jax.value_and_grad(loss('pallas', 32), argnums=(0, 1))(x, y)
  v_s, g_s = jax.value_and_grad(loss('xla', 32), argnums=(0, 1))(x, y)
  s = x @ y.T
  v_d = (bounds.infonce(s) + bounds.infonce(s.T)) / 2 if symmetric else bounds.infonce(s)
  np.testing.assert_allclose(v_p, v_s, rtol=1e-6)
  np.testing.assert_allclose(v_p, v_d, rtol=1e-5)
  for a, b in zip(g_p, g_s):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_dv_nwj_exclude_self_through_pallas():
  x, y = _data(64, 64)
  got = streaming.pairwise_statistics(x, y, rows=True, exclude_self=True, block_size=16,
                                      implementation='pallas')
  np.testing.assert_allclose(got.row_lse, _dense_lse64(x, y, True, 0, 0)[0], rtol=1e-6,
                             atol=1e-5)


@pytest.mark.slow
def test_bfloat16_kernel_within_precision_bounds():
  x, y = _data(256, 256, 32)
  y = 0.8 * x + 0.6 * y
  loss = lambda a, b: -streaming.infonce(a, b, block_size=64, implementation='pallas',
                                         matmul_dtype='bfloat16')
  value, (gx, gy) = jax.value_and_grad(loss, argnums=(0, 1))(x, y)
  with _x64():
    x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
    ref, (rx, ry) = jax.value_and_grad(lambda a, b: -bounds.infonce(a @ b.T),
                                       argnums=(0, 1))(x64, y64)
  assert abs(float(value) - float(ref)) / abs(float(ref)) <= 1e-3
  g = np.concatenate([np.ravel(gx), np.ravel(gy)])
  g_ref = np.concatenate([np.ravel(rx), np.ravel(ry)])
  assert np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref) <= 1e-2


def test_sharded_interpret_mode_is_refused_clearly():
  """Off GPU the kernel runs in interpret mode, which shard_map's varying-axes
  check rejects (JAX 0.10): a clear error instead of an internal one."""
  x, y = _data(64, 64)
  mesh = parallel.make_mesh(jax.devices()[:1])
  fn = parallel.batch_shard_map(functools.partial(
      streaming.infonce, block_size=16, axis_name=parallel.DATA_AXIS,
      implementation='pallas'), mesh)
  with pytest.raises(ValueError, match="implementation='pallas' inside shard_map needs a GPU"):
    fn(x, y)


def test_bad_arguments_raise():
  x, y = _data(8, 8, 4)
  with pytest.raises(ValueError, match="unknown implementation 'triton'; valid "
                     'implementations are: xla, pallas'):
    streaming.infonce(x, y, implementation='triton')
  with pytest.raises(ValueError, match='softplus=True'):
    streaming.pairwise_statistics(x, y, softplus=True, implementation='pallas')
  with pytest.raises(ValueError, match='same d'):
    kernels.pairwise_lse(x, y[:, :2])
  with pytest.raises(ValueError, match='block_rows must be a positive int, got 0'):
    kernels.pairwise_lse(x, y, block_rows=0)
