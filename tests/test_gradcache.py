"""infomax_jax.gradcache: the chunked (GradCache) step equals the plain step.

References are the plain computations differentiated by ``jax.grad`` (float64
where exactness is the point); memory is read from the compiled programs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import encoders
from infomax_jax import gradcache
from infomax_jax import twoview
from infomax_jax.bounds import streaming


def _x64():
  if hasattr(jax, 'enable_x64'):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


def _model(critic='bilinear', **kwargs):
  enc = lambda: encoders.make_encoder('mlp', features=(24, 16))
  return twoview.TwoView(enc(), enc(), critics.make_critic(critic, **kwargs))


def _data(k, dim=10, dtype=jnp.float32):
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (k, dim), dtype)
  return x, (0.8 * x + 0.6 * jax.random.normal(ky, (k, dim), dtype)).astype(dtype)


def _max_rel(a, b):
  """max |a - b| over all leaves, relative to the largest |b| over all leaves."""
  diff = max(float(jnp.max(jnp.abs(u - v))) for u, v in
             zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  return diff / max(float(jnp.max(jnp.abs(v))) for v in jax.tree.leaves(b))


@pytest.mark.parametrize('critic,kwargs', [
    ('bilinear', {}),
    pytest.param('separable', dict(hidden=(8,), embed_dim=6), marks=pytest.mark.slow),
    pytest.param('concat', dict(hidden=(8,)), marks=pytest.mark.slow)])
def test_two_view_gradients_equal_plain_autodiff_float64(critic, kwargs):
  with _x64():
    model = _model(critic, **kwargs)
    x, y = _data(50, dtype=jnp.float64)          # 50 = 3 chunks of 16 + a padded one
    params = model.init(jax.random.PRNGKey(1), x, y)['params']
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    plain = lambda p: -bounds.infonce(model.apply({'params': p}, x, y))
    cached = lambda p: -bounds.infonce(gradcache.two_view_scores(model, p, x, y, 16))
    v0, g0 = jax.jit(jax.value_and_grad(plain))(params)
    v1, g1 = jax.jit(jax.value_and_grad(cached))(params)
    np.testing.assert_allclose(v1, v0, rtol=1e-12)
    assert _max_rel(g1, g0) < 1e-10


@pytest.mark.slow
def test_streaming_loss_and_adam_step_equal_plain_float32():
  """The GradCache step of the large-batch experiment: chunked encoders, streamed
  InfoNCE, one Adam update; the parameters after it equal the plain step's."""
  model = _model()
  x, y = _data(96)
  params = model.init(jax.random.PRNGKey(1), x, y)['params']
  opt = optax.adam(1e-2)

  def step(loss_fn):
    def run(p):
      value, grads = jax.value_and_grad(loss_fn)(p)
      updates, _ = opt.update(grads, opt.init(p), p)
      return value, grads, optax.apply_updates(p, updates)
    return jax.jit(run)(params)

  def plain(p):
    s = model.apply({'params': p}, x, y)
    return -0.5 * (bounds.infonce(s) + bounds.infonce(s.T))

  def cached(p):      # the bilinear critic <g1 W, g2> as streamed embeddings
    gx = gradcache.encode(model.encoder_x, p['encoder_x'], x, 32)
    gy = gradcache.encode(model.encoder_y, p['encoder_y'], y, 32)
    return -streaming.infonce(gx @ p['critic']['kernel'], gy, block_size=24,
                              symmetric=True)

  v0, g0, p0 = step(plain)
  v1, g1, p1 = step(cached)
  np.testing.assert_allclose(v1, v0, rtol=1e-5)
  assert _max_rel(g1, g0) < 1e-5
  assert _max_rel(p1, p0) < 1e-5


def test_input_gradient_and_pytree_inputs():
  apply_fn = lambda p, v: jnp.tanh(v['a'] @ p) * v['b'][:, None]
  p = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
  v = {'a': jax.random.normal(jax.random.PRNGKey(1), (11, 5)),
       'b': jnp.linspace(0.5, 1.5, 11)}
  f = lambda fn: lambda p, v: jnp.sum(jnp.sin(fn(p, v)) ** 2)
  chunked = lambda p, v: gradcache.chunked_apply(apply_fn, p, v, chunk_size=4)
  ref = jax.grad(f(apply_fn), argnums=(0, 1))(p, v)
  got = jax.jit(jax.grad(f(chunked), argnums=(0, 1)))(p, v)
  assert _max_rel(got, ref) < 1e-6


def test_integer_inputs_get_no_gradient():
  apply_fn = lambda p, v: v['x'] @ p + v['label'][:, None].astype(jnp.float32)
  p = jnp.ones((3, 2))
  v = {'x': jnp.ones((7, 3)), 'label': jnp.arange(7)}
  loss = lambda p: jnp.sum(gradcache.chunked_apply(apply_fn, p, v, chunk_size=3) ** 2)
  np.testing.assert_allclose(jax.grad(loss)(p), jax.grad(
      lambda p: jnp.sum(apply_fn(p, v) ** 2))(p), rtol=1e-6)


def test_encoder_activation_memory_is_one_chunk():
  """Compiled temp memory of loss + gradient: plain grows with K, chunked does not."""
  enc = encoders.make_encoder('mlp', features=(1024, 1024, 64))
  x = jax.ShapeDtypeStruct((8192, 256), jnp.float32)
  params = jax.eval_shape(enc.init, jax.random.PRNGKey(0), jnp.zeros((1, 256)))['params']

  def temp(chunk):
    loss = lambda p, x: jnp.sum(gradcache.encode(enc, p, x, chunk) ** 2)
    return jax.jit(jax.grad(loss)).lower(params, x).compile().memory_analysis() \
        .temp_size_in_bytes

  plain, cached = temp(None), temp(512)
  # Plain keeps >= 2 (K, 1024) float32 activations (64 MiB); chunked one chunk's.
  assert plain > 2 * 8192 * 1024 * 4
  assert cached < plain / 4


def test_bad_arguments_raise():
  p = jnp.ones((3, 2))
  with pytest.raises(ValueError, match='chunk_size must be None or a positive int, got 0'):
    gradcache.chunked_apply(lambda p, v: v @ p, p, jnp.ones((4, 3)), chunk_size=0)
  with pytest.raises(ValueError, match='same leading'):
    gradcache.chunked_apply(lambda p, v: v['a'] @ p, p,
                            {'a': jnp.ones((4, 3)), 'b': jnp.ones((5,))}, chunk_size=2)


@pytest.mark.slow
def test_fig3_training_step_at_k65536_fits_in_2_gib():
  """Issue #18's bar: the whole step (MLP encoders [300, 300, 100], bilinear
  critic, InfoNCE, Adam) at K = 65536 within 2 GiB, by XLA's compiled account."""
  from benchmarks import large_batch_memory  # pylint: disable=g-import-not-at-top
  cached = large_batch_memory.compiled_memory('gradcache', 65536, 4096, 1024)
  plain = large_batch_memory.compiled_memory('plain', 65536, 4096, 1024)
  assert cached['total'] <= 2 * 2**30, cached
  assert plain['total'] > 16 * 2**30, plain      # the dense step: two 16 GiB matrices
