"""Exact and matrix-free Jacobian conditioning of encoders.

Tschannen et al. (ICLR 2020, Sec. 3.1 / Fig. 2) track the condition number
kappa(J) = sigma_max(J) / sigma_min(J) of the Jacobian J = dg(x)/dx of an
encoder g at data inputs x, and report percentiles of log kappa over a batch.

* Exact path: ``J`` by ``jax.jacfwd`` (n forward-mode JVPs per input), vmapped
  over the batch inside ``lax.map(..., batch_size=chunk_size)`` so at most
  ``chunk_size`` dense Jacobians exist at once; singular values by an SVD in
  the same chunk (the (B, m, n) Jacobian stack is never materialised by
  ``singular_values`` / ``log_condition_numbers``).
* Matrix-free path (beyond the papers): Golub-Kahan-Lanczos bidiagonalisation
  of J with full reorthogonalisation, driven by one JVP and one VJP per
  iteration (``jax.linearize`` + ``jax.linear_transpose``). The singular values
  of the k x k bidiagonal B_k are Ritz values of J: the largest converges in a
  few iterations, the smallest slowly (it is an upper bound on sigma_min that
  decreases with k, so log kappa is under- rather than over-estimated), and
  with k = min(m, n) iterations they are exact up to rounding. Working on J
  rather than J^T J avoids squaring the condition number in float32.
"""

import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Function = Callable[[Array], Array]

# The percentiles reported by Tschannen et al. (2020), Fig. 2.
PERCENTILES: tuple[float, ...] = (0., 20., 40., 60., 80., 100.)


def _check_inputs(xs: Array, chunk_size: Optional[int]) -> None:
  if xs.ndim != 2:
    raise ValueError(f'expected a batch of vectors of shape (B, n), got shape '
                     f'{xs.shape}')
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f'expected chunk_size >= 1 or None, got {chunk_size}')


def _check_vector_function(f: Function, x: Array) -> None:
  out = jax.eval_shape(f, x)
  if out.ndim != 1:
    raise ValueError(f'f must map a vector of shape {x.shape} to a vector '
                     f'(m,), got output shape {out.shape}')


def _batch_map(fn: Callable[[Array], Array], xs: Array,
               chunk_size: Optional[int]) -> Array:
  """``vmap(fn)(xs)`` evaluated ``chunk_size`` rows at a time (all if None)."""
  if chunk_size is None or chunk_size >= xs.shape[0]:
    return jax.vmap(fn)(xs)
  return jax.lax.map(fn, xs, batch_size=chunk_size)


def jacobians(f: Function, xs: Array, *,
              chunk_size: Optional[int] = None) -> Array:
  """Dense Jacobians of ``f`` at every row of ``xs`` by ``jax.jacfwd``.

  Args:
    f: function of one input vector (n,) to an output vector (m,).
    xs: (B, n) inputs.
    chunk_size: rows per vmapped chunk (``lax.map`` over chunks); None: all.

  Returns:
    (B, m, n) array, ``out[b] = df/dx (xs[b])``.
  """
  xs = jnp.asarray(xs)
  _check_inputs(xs, chunk_size)
  _check_vector_function(f, xs[0])
  return _batch_map(jax.jacfwd(f), xs, chunk_size)


def singular_values(f: Function, xs: Array, *,
                    chunk_size: Optional[int] = 32) -> Array:
  """Singular values of the exact Jacobian of ``f`` at each row of ``xs``.

  The Jacobian and its SVD are computed chunk by chunk, so memory holds at
  most ``chunk_size`` dense (m, n) Jacobians.

  Args:
    f: function of one input vector (n,) to an output vector (m,).
    xs: (B, n) inputs.
    chunk_size: rows per chunk; None: the whole batch at once.

  Returns:
    (B, min(m, n)) singular values, in decreasing order.
  """
  xs = jnp.asarray(xs)
  _check_inputs(xs, chunk_size)
  _check_vector_function(f, xs[0])
  svdvals = lambda x: jnp.linalg.svd(jax.jacfwd(f)(x), compute_uv=False)
  return _batch_map(svdvals, xs, chunk_size)


def log_condition_numbers(f: Function, xs: Array, *,
                          chunk_size: Optional[int] = 32) -> Array:
  """log kappa(J) = log sigma_max - log sigma_min of f's exact Jacobian.

  Args:
    f: function of one input vector (n,) to an output vector (m,).
    xs: (B, n) inputs.
    chunk_size: rows per chunk (bounds memory); None: the whole batch at once.

  Returns:
    (B,) log condition numbers (``inf`` where the Jacobian is singular).
  """
  s = singular_values(f, xs, chunk_size=chunk_size)
  # A zero smallest singular value (an all-zero Jacobian included) is a
  # singular Jacobian: kappa = inf, not log(0) - log(0) = nan.
  return jnp.where(s[:, -1] > 0, jnp.log(s[:, 0]) - jnp.log(s[:, -1]), jnp.inf)


def percentiles(values: Array,
                qs: Sequence[float] = PERCENTILES) -> np.ndarray:
  """Percentiles ``qs`` (in [0, 100]) of a 1-D array of values, as numpy.

  Args:
    values: (B,) values, e.g. ``log_condition_numbers(...)``.
    qs: the percentiles to report; default (0, 20, 40, 60, 80, 100).

  Returns:
    (len(qs),) float64 array (``np.percentile`` with linear interpolation).
  """
  values = np.asarray(values)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f'expected a non-empty 1-D array of values, got shape '
                     f'{values.shape}')
  qs = np.asarray(qs, dtype=np.float64)
  if qs.ndim != 1 or np.any((qs < 0) | (qs > 100)):
    raise ValueError(f'expected percentiles in [0, 100], got {qs.tolist()}')
  return np.percentile(values.astype(np.float64), qs)


def _unit(v: Array) -> tuple[Array, Array]:
  norm = jnp.linalg.norm(v)
  return v / jnp.where(norm > 0, norm, 1.0), norm


def _orthogonalise(w: Array, basis: Array) -> Array:
  """w minus its projection on the rows of ``basis`` (twice: 'twice is enough')."""
  for _ in range(2):
    w = w - basis.T @ (basis @ w)
  return w


def _restart_if_breakdown(w: Array, norm: Array, basis: Array, key: Array,
                          scale: Array) -> tuple[Array, Array]:
  """On (near) breakdown, continue from a fresh random direction, coefficient 0.

  A zero coefficient decouples the bidiagonal matrix into blocks, each of
  whose singular values are singular values of J, so the Ritz values stay
  valid after an invariant subspace is exhausted.
  """
  eps = jnp.finfo(w.dtype).eps
  broke = norm <= 10 * eps * jnp.maximum(scale, jnp.finfo(w.dtype).tiny)
  fresh = _orthogonalise(jax.random.normal(key, w.shape, w.dtype), basis)
  fresh, _ = _unit(fresh)
  unit, _ = _unit(w)
  return jnp.where(broke, fresh, unit), jnp.where(broke, 0.0, norm)


def lanczos_singular_values(f: Function, x: Array, *, num_iters: int,
                            key: Optional[Array] = None) -> Array:
  """Matrix-free Ritz estimates of the singular values of J = df/dx at x.

  Golub-Kahan-Lanczos bidiagonalisation with full reorthogonalisation:
  J V_k = U_k B_k with B_k upper bidiagonal (diagonal alpha, superdiagonal
  beta); each iteration costs one JVP and one VJP of f (no dense Jacobian).
  sigma_max(B_k) <= sigma_max(J) and sigma_min(B_k) >= sigma_min(J) (Cauchy
  interlacing), converging as k grows; exact at k = min(m, n).

  Args:
    f: function of one input vector (n,) to an output vector (m,).
    x: (n,) point at which to linearise f.
    num_iters: k, the Krylov dimension, 1 <= k <= min(m, n).
    key: PRNG key of the random start vector (default ``PRNGKey(0)``).

  Returns:
    (k,) singular values of B_k in decreasing order.
  """
  x = jnp.asarray(x)
  if x.ndim != 1:
    raise ValueError(f'expected one input vector of shape (n,), got shape '
                     f'{x.shape}')
  _check_vector_function(f, x)
  m, n = jax.eval_shape(f, x).shape[0], x.shape[0]
  if not 1 <= num_iters <= min(m, n):
    raise ValueError(f'expected 1 <= num_iters <= min(m, n) = {min(m, n)}, '
                     f'got {num_iters}')
  key = jax.random.PRNGKey(0) if key is None else key
  _, jvp = jax.linearize(f, x)
  vjp = jax.linear_transpose(jvp, x)
  k = num_iters
  dtype = x.dtype

  start_key, loop_key = jax.random.split(key)
  v, _ = _unit(jax.random.normal(start_key, (n,), dtype))
  vs = jnp.zeros((k, n), dtype).at[0].set(v)
  us = jnp.zeros((k, m), dtype)
  alphas = jnp.zeros((k,), dtype)
  betas = jnp.zeros((k,), dtype)   # betas[j] couples column j and j + 1

  def body(j, carry):
    vs, us, alphas, betas, scale = carry
    ku, kv = jax.random.split(jax.random.fold_in(loop_key, j))
    # u_j = (J v_j - beta_{j-1} u_{j-1}) / alpha_j, reorthogonalised.
    u = jvp(vs[j])
    u = _orthogonalise(u, us)
    u_norm = jnp.linalg.norm(u)
    scale = jnp.maximum(scale, u_norm)
    u, alpha = _restart_if_breakdown(u, u_norm, us, ku, scale)
    us = us.at[j].set(u)
    alphas = alphas.at[j].set(alpha)
    # v_{j+1} = (J^T u_j - alpha_j v_j) / beta_j, reorthogonalised.
    (w,) = vjp(u)
    w = _orthogonalise(w, vs)
    w_norm = jnp.linalg.norm(w)
    scale = jnp.maximum(scale, w_norm)
    w, beta = _restart_if_breakdown(w, w_norm, vs, kv, scale)
    last = j + 1 >= k
    vs = jnp.where(last, vs, vs.at[jnp.minimum(j + 1, k - 1)].set(w))
    betas = betas.at[j].set(jnp.where(last, 0.0, beta))
    return vs, us, alphas, betas, scale

  _, _, alphas, betas, _ = jax.lax.fori_loop(
      0, k, body, (vs, us, alphas, betas, jnp.zeros((), dtype)))
  bidiagonal = jnp.diag(alphas) + jnp.diag(betas[:-1], 1)
  return jnp.linalg.svd(bidiagonal, compute_uv=False)


def lanczos_log_condition_numbers(f: Function, xs: Array, *, num_iters: int,
                                  chunk_size: Optional[int] = 32,
                                  key: Optional[Array] = None) -> Array:
  """Matrix-free log kappa estimates at each row of ``xs``.

  ``log sigma_max(B_k) - log sigma_min(B_k)`` from
  ``lanczos_singular_values``; a lower bound on the exact log kappa that
  tightens with ``num_iters`` (exact at ``num_iters = min(m, n)``).

  Args:
    f: function of one input vector (n,) to an output vector (m,).
    xs: (B, n) inputs.
    num_iters: Krylov dimension k per input.
    chunk_size: rows per vmapped chunk; None: all at once.
    key: PRNG key of the start vectors (the same for every row).

  Returns:
    (B,) estimated log condition numbers.
  """
  xs = jnp.asarray(xs)
  _check_inputs(xs, chunk_size)
  estimate = functools.partial(lanczos_singular_values, f,
                               num_iters=num_iters, key=key)
  def one(x):
    s = estimate(x)
    return jnp.log(s[0]) - jnp.log(s[-1])
  return _batch_map(one, xs, chunk_size)
