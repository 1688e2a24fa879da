"""Gradient caching (GradCache): a training step whose memory does not grow with the encoder.

A contrastive loss couples every example of the batch, so the batch cannot be
split into micro-batches with summed gradients. Gradient caching (Gao et al.
2021, "Scaling deep contrastive learning batch size under memory limited
setup") splits the *encoder* instead:

1. embed the K examples in chunks of C, keeping only the (K, d) embeddings
   (no activations);
2. compute the loss and its gradient G = dL/dE with respect to the embeddings
   (``infomax_jax.bounds.streaming`` keeps this O(K d) too);
3. re-run the encoder on each chunk with a VJP against its rows of G and add up
   the parameter gradients: dL/dtheta = sum_chunks J_chunk^T G_chunk.

``chunked_apply`` packages 1 and 3 as one differentiable function (a
``jax.custom_vjp``): its forward pass is step 1 and its backward pass is step
3, so any loss written on its output is differentiated by plain ``jax.grad``
(``infomax_jax.train``'s step, Adam included) and the gradient is the plain
step's, up to float summation order (tests/test_gradcache.py). Peak memory is
O(C x width) for the encoder (one chunk's activations, recomputed once: about
one extra forward pass of compute) plus whatever the loss needs.

``two_view_scores`` applies it to the two encoders of
``infomax_jax.twoview.TwoView`` (config field ``embed_chunk``).

The encoder must be a deterministic function of (params, inputs) for the two
passes to agree: draw any dropout noise from a key folded with the chunk
index outside, or do without it.
"""

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ApplyFn = Callable[[Any, Any], Any]


def _leading(inputs, fn: str) -> int:
  leaves = jax.tree.leaves(inputs)
  if not leaves:
    raise ValueError(f'{fn}: inputs must hold at least one array, got {inputs!r}')
  sizes = {np.shape(a)[0] if np.ndim(a) else None for a in leaves}
  if len(sizes) != 1 or None in sizes:
    raise ValueError(f'{fn}: every input must have the same leading (batch) axis K, '
                     f'got shapes {[np.shape(a) for a in leaves]}')
  return sizes.pop()


def _chunks(inputs, chunk_size: int):
  """inputs (K, ...) -> (n, C, ...), zero-padded to a multiple of C."""
  k = _leading(inputs, 'chunked_apply')
  n = -(-k // chunk_size)

  def split(a):
    a = jnp.pad(a, [(0, n * chunk_size - k)] + [(0, 0)] * (a.ndim - 1))
    return a.reshape(n, chunk_size, *a.shape[1:])

  return jax.tree.map(split, inputs), n, k


def _unchunk(out, k: int):
  return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:k], out)


def _forward(apply_fn, params, inputs, chunk_size):
  chunks, _, k = _chunks(inputs, chunk_size)
  return _unchunk(jax.lax.map(lambda c: apply_fn(params, c), chunks), k)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3))
def _chunked_apply(apply_fn, params, inputs, chunk_size):
  return _forward(apply_fn, params, inputs, chunk_size)


def _fwd(apply_fn, params, inputs, chunk_size):
  # Residuals: the parameters and inputs only, never an activation.
  return _forward(apply_fn, params, inputs, chunk_size), (params, inputs)


def _is_float(a) -> bool:
  return jnp.issubdtype(jnp.result_type(a), jnp.inexact)


def _bwd(apply_fn, chunk_size, residuals, cotangent):
  params, inputs = residuals
  chunks, _, k = _chunks(inputs, chunk_size)
  ct_chunks, _, _ = _chunks(cotangent, chunk_size)   # padded rows get zero cotangent
  zero = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)

  def body(acc, chunk_and_ct):
    chunk, ct = chunk_and_ct
    # Differentiate with respect to the floating inputs only (labels, masks, ...
    # get a float0 zero cotangent below).
    floats = jax.tree.map(lambda a: a if _is_float(a) else None, chunk)
    others = jax.tree.map(lambda a: None if _is_float(a) else a, chunk)
    merge = lambda f, o: jax.tree.map(lambda a, b: b if a is None else a, f, o,
                                      is_leaf=lambda v: v is None)
    _, vjp = jax.vjp(lambda p, f: apply_fn(p, merge(f, others)), params, floats)
    dp, dx = vjp(ct)
    return jax.tree.map(jnp.add, acc, dp), dx

  dparams, dx_chunks = jax.lax.scan(body, zero, (chunks, ct_chunks))
  dx = _unchunk(dx_chunks, k)
  dinputs = jax.tree.map(
      lambda a, g: g if _is_float(a) else np.zeros(np.shape(a), jax.dtypes.float0),
      inputs, jax.tree.map(lambda a: a if _is_float(a) else None, dx,
                           is_leaf=lambda v: v is None),
      is_leaf=lambda v: v is None)
  return dparams, dinputs


_chunked_apply.defvjp(_fwd, _bwd)


def chunked_apply(apply_fn: ApplyFn, params: Any, inputs: Any, *,
                  chunk_size: Optional[int]) -> Any:
  """``apply_fn(params, inputs)`` in chunks of rows, with a GradCache backward pass.

  The forward pass runs ``apply_fn`` on ``chunk_size`` rows at a time
  (``lax.map``) and keeps none of its activations; the backward pass re-runs
  each chunk under ``jax.vjp`` against that chunk's rows of the output
  cotangent and sums the parameter gradients (a ``lax.scan``). Values and
  gradients equal the unchunked ``apply_fn(params, inputs)``'s up to float
  summation order, for any loss on the output (a contrastive loss coupling all
  rows included).

  Args:
    apply_fn: ``(params, inputs_chunk) -> outputs_chunk``, row-wise (row i of
      the output depends on row i of the input only; no batch statistics) and
      deterministic; e.g. ``lambda p, x: module.apply({'params': p}, x)``.
    params: pytree of parameters (differentiated).
    inputs: array or pytree of arrays with a common leading axis K (the
      floating ones are differentiated too; K need not be a multiple of
      ``chunk_size``: the last chunk is zero-padded).
    chunk_size: rows per chunk C (peak activation memory O(C)); None or
      C >= K runs ``apply_fn`` directly (plain autodiff).

  Returns:
    ``apply_fn(params, inputs)``: outputs with leading axis K.
  """
  k = _leading(inputs, 'chunked_apply')
  if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer))
                                 or isinstance(chunk_size, bool) or chunk_size < 1):
    raise ValueError(f'chunked_apply: chunk_size must be None or a positive int, '
                     f'got {chunk_size!r}')
  if chunk_size is None or chunk_size >= k:
    return apply_fn(params, inputs)
  return _chunked_apply(apply_fn, params, inputs, int(chunk_size))


def encode(module, params: Any, inputs: Any, chunk_size: Optional[int]) -> Any:
  """``module.apply({'params': params}, inputs)`` through ``chunked_apply``."""
  return chunked_apply(_module_apply(module), params, inputs, chunk_size=chunk_size)


@functools.lru_cache(maxsize=None)
def _module_apply(module) -> ApplyFn:
  # One function object per module: custom_vjp's static argument stays the same
  # between traces.
  return lambda p, x: module.apply({'params': p}, x)


def two_view_scores(model, params: dict, x: Array, y: Array,
                    chunk_size: Optional[int]) -> Array:
  """The (K, K) scores of a ``twoview.TwoView`` with both encoders gradient-cached.

  Equals ``model.apply({'params': params}, x, y)`` with the same gradients; the
  encoders' activations never exceed one chunk of ``chunk_size`` rows.
  """
  gx = encode(model.encoder_x, params['encoder_x'], x, chunk_size)
  gy = encode(model.encoder_y, params['encoder_y'], y, chunk_size)
  return model.critic.apply({'params': params.get('critic', {})}, gx, gy)
