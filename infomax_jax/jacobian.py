"""Exact and matrix-free Jacobian conditioning of encoders.

Tschannen et al. (ICLR 2020, Sec. 3.1 / Fig. 2) track the condition number
kappa(J) = sigma_max(J) / sigma_min(J) of the Jacobian J = dg(x)/dx of an
encoder g at data inputs x, and report percentiles of log kappa over a batch.

* Exact path: ``J`` by ``jax.jacfwd`` (n forward-mode JVPs per input; in
  ``singular_values``, m VJPs when m < n), vmapped
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
* Matrix-free with a tolerance (``log_condition_numbers(...,
  method='matrix_free', rtol=...)``): the same bidiagonalisation, grown in
  stages (8, 16, 24, ... iterations) until the Ritz residuals bound log kappa
  to within log(1 + rtol), or ``max_iters`` is reached: then the input is
  flagged ``converged = False``, never returned as a silent lower bound. With
  the inverse of an invertible encoder, sigma_min(J_f(x)) =
  1 / sigma_max(J_{f^-1}(f(x))), and both ends converge as fast as sigma_max.
  Rectangular J (e.g. 3072 -> 64) are bidiagonalised on the side of the
  smaller dimension p, so p iterations exhaust the space (exact), and
  sigma_min is the p-th singular value (sigma_min over the rank).
"""

import functools
import math
from typing import Callable, NamedTuple, Optional, Sequence

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


def _dense_jacobian(f: Function, x: Array) -> Array:
  """The exact (m, n) Jacobian: ``jacfwd`` (n JVPs), or m VJPs when m < n,
  e.g. 64 VJPs instead of 3072 JVPs for a 3072 -> 64 encoder.

  The m VJPs are taken at m copies of x (primal and cotangent batched
  together), not as ``jax.jacrev`` (one primal, m cotangents): inside
  ``lax.map``/``scan`` on XLA:CPU (jax 0.10.2), ``jacrev`` of the 32x32x3
  ConvNet with >= 64 outputs returns a wrong Jacobian (errors of 40 % of its
  largest entry against float64 finite differences; right outside loops and
  with <= 48 cotangents). The batched-primal form is right there, at the same
  cost (BUILD_NOTES, "jacrev in a loop").
  """
  m, n = jax.eval_shape(f, x).shape[0], x.shape[0]
  if m >= n:
    return jax.jacfwd(f)(x)
  copies = jnp.broadcast_to(x, (m, n))
  basis = jnp.eye(m, dtype=jax.eval_shape(f, x).dtype)
  return jax.vmap(lambda xi, ci: jax.vjp(f, xi)[1](ci)[0])(copies, basis)


def singular_values(f: Function, xs: Array, *,
                    chunk_size: Optional[int] = 32) -> Array:
  """Singular values of the exact Jacobian of ``f`` at each row of ``xs``.

  The Jacobian (``jax.jacfwd``; m VJPs when the output is smaller
  than the input) and its SVD are computed chunk by chunk, so memory holds
  at most ``chunk_size`` dense (m, n) Jacobians.

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
  svdvals = lambda x: jnp.linalg.svd(_dense_jacobian(f, x), compute_uv=False)
  return _batch_map(svdvals, xs, chunk_size)


METHODS = ('exact', 'matrix_free')


def log_condition_numbers(f: Function, xs: Array, *, method: str = 'exact',
                          chunk_size: Optional[int] = 32, rtol: float = 1e-2,
                          inverse: Optional[Function] = None,
                          max_iters: Optional[int] = None,
                          key: Optional[Array] = None):
  """log kappa(J) = log sigma_max - log sigma_min of f's Jacobian at each x.

  For a rectangular J, sigma_min is the min(m, n)-th singular value (sigma_min
  over the rank).

  Args:
    f: function of one input vector (n,) to an output vector (m,).
    xs: (B, n) inputs.
    method: 'exact' (dense Jacobian + SVD, chunked) or 'matrix_free'
      (``matrix_free_log_condition_numbers``: Golub-Kahan-Lanczos with a
      convergence test; only JVPs and VJPs of f).
    chunk_size: rows per chunk (bounds memory); None: the whole batch at
      once.
    rtol: 'matrix_free' only: requested relative tolerance on kappa.
    inverse: 'matrix_free' only: f's inverse, if f is invertible (sigma_min
      from the inverse's Jacobian at f(x)).
    max_iters: 'matrix_free' only: the largest Krylov dimension tried.
    key: 'matrix_free' only: PRNG key of the start vectors.

  Returns:
    'exact': (B,) log condition numbers (``inf`` where the Jacobian is
    singular). 'matrix_free': a ``MatrixFreeConditioning`` (``log_kappa``,
    its certified upper end ``log_kappa_upper``, a per-input ``converged``
    flag and ``num_iters``).
  """
  if method not in METHODS:
    raise ValueError(f'unknown method {method!r}; expected one of {METHODS}')
  if method == 'matrix_free':
    return matrix_free_log_condition_numbers(
        f, xs, rtol=rtol, inverse=inverse, max_iters=max_iters,
        chunk_size=chunk_size, key=key)
  s = singular_values(f, xs, chunk_size=chunk_size)
  # A zero smallest singular value (an all-zero Jacobian included) is a
  # singular Jacobian: kappa = inf, not log(0) - log(0) = nan.
  return jnp.where(s[:, -1] > 0, jnp.log(s[:, 0]) - jnp.log(s[:, -1]), jnp.inf)


def effective_rank(s: Array) -> Array:
  """Effective rank exp(H(p)), p = s / sum(s) (Roy & Vetterli, 2007).

  Between 1 (one non-zero singular value) and len(s) (all equal).

  Args:
    s: (..., r) non-negative singular values.

  Returns:
    (...) effective ranks.
  """
  s = jnp.asarray(s)
  if s.ndim < 1 or s.shape[-1] == 0:
    raise ValueError(f'expected singular values of shape (..., r) with r >= 1, '
                     f'got shape {s.shape}')
  p = s / jnp.sum(s, axis=-1, keepdims=True)
  entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0),
                     axis=-1)
  return jnp.exp(entropy)


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


class MatrixFreeConditioning(NamedTuple):
  """Matrix-free log condition numbers with a per-input error certificate.

  Attributes:
    log_kappa: (B,) log of the Ritz estimate of kappa; never above the exact
      log kappa (Ritz values interlace: theta_max <= sigma_max and theta_min
      >= sigma_min).
    log_kappa_upper: (B,) upper end of the interval the Ritz residuals
      certify (``inf`` where they certify none).
    converged: (B,) bool: ``log_kappa_upper - log_kappa <= log(1 + rtol)``,
      i.e. kappa is known to relative tolerance ``rtol``. Where False,
      ``log_kappa`` is only a lower bound.
    num_iters: (B,) Krylov dimension reached (of each bidiagonalisation).
  """
  log_kappa: Array
  log_kappa_upper: Array
  converged: Array
  num_iters: Array


DEFAULT_MAX_ITERS = 256
# Spaces of dimension p <= EXHAUST_DIM are always exhausted (k = p: the Ritz
# values are the singular values): cheap, and immune to Krylov misconvergence
# (measured: a 3072 -> 64 DIM encoder whose bottom Ritz value had converged,
# with a small residual, to sigma_63 at k = 48, an error of 0.0135 in log kappa).
EXHAUST_DIM = 64
_FIRST_STAGE = 8


def _linear_maps(f: Function, xs: Array):
  """Batched (matvec, rmatvec, p, q): A = J (p = n) if n <= m, else J^T (p = m).

  The maps act on (B, p) / (B, q) stacks, one row per input (the linearised
  ``vmap(f)``), so each iteration is one matrix-matrix product through the
  network rather than B matrix-vector ones. Bidiagonalising on the side of
  the smaller dimension p makes p iterations exhaust the space (then the
  Ritz values are J's singular values) and keeps sigma_min(A V_k) >=
  sigma_p(J) for every orthonormal V_k.
  """
  ys, jvp = jax.linearize(jax.vmap(f), xs)
  vjp_t = jax.linear_transpose(jvp, xs)
  vjp = lambda u: vjp_t(u)[0]
  m, n = ys.shape[1], xs.shape[1]
  return (jvp, vjp, n, m) if n <= m else (vjp, jvp, m, n)


def _stages(p: int, max_iters: int) -> list[int]:
  """Krylov dimensions at which convergence is tested, capped at min(p,
  max_iters): every 8 up to 64, every 16 up to 128, then every 32 (a test
  costs a k x k SVD per input, far less than the iterations between tests);
  when max_iters >= p, straight from the last stage below p / 2 to p."""
  if p <= EXHAUST_DIM and max_iters >= p:
    return [p]
  cap, sizes, k = min(max_iters, p), [], _FIRST_STAGE
  while not sizes or sizes[-1] < cap:
    sizes.append(min(k, cap))
    k += 8 if k < 64 else (16 if k < 128 else 32)
  if cap == p:
    # Past p / 2, exhausting the space costs at most twice what was spent and
    # is exact, which removes the certificate's one caveat (it proves that a
    # singular value lies near the bottom Ritz value, not that it is sigma_min).
    sizes = [s for s in sizes if s < p // 2] + [p]
  return sizes


def _ritz_interval(alphas: Array, betas: Array, k: int, p: int,
                   both_ends: bool) -> tuple[Array, Array]:
  """[lo, hi] of log kappa (both_ends) or of log sigma_max, from one B_k.

  With B_k = P diag(theta) Q^T, the Ritz triplet i has residual
  ||A^T U_k p_i - theta_i V_k q_i|| = beta_k |P[k-1, i]|, and a singular value
  of A lies within it of theta_i. Assuming the extreme Ritz values approach
  the extreme singular values (random start), sigma_max is in [theta_1,
  theta_1 + r_1] and sigma_min in [theta_k - r_k, theta_k]. At k = p the
  space is exhausted: the residuals are 0.
  """
  bidiagonal = jnp.diag(alphas[:k]) + jnp.diag(betas[:k - 1], 1)
  left, theta, _ = jnp.linalg.svd(bidiagonal)
  last_beta = 0.0 if k == p else betas[k - 1]
  res = jnp.abs(last_beta * left[k - 1, :])
  top_lo, top_hi = jnp.log(theta[0]), jnp.log(theta[0] + res[0])
  if not both_ends:
    return top_lo, top_hi
  bottom, bottom_res = theta[k - 1], res[k - 1]
  lo = top_lo - jnp.log(bottom)
  hi = jnp.where(bottom > bottom_res, top_hi - jnp.log(bottom - bottom_res), jnp.inf)
  return lo, hi


def _width(lo: Array, hi: Array) -> Array:
  # An exactly singular J gives lo = hi = inf: a width of 0 (kappa = inf).
  return jnp.where(hi == lo, 0.0, hi - lo)


def _orthogonalise_rows(w: Array, basis: Array) -> Array:
  """Row b of w (B, d) minus its projection on the rows of basis[b] (B, K, d)."""
  for _ in range(2):
    w = w - jnp.einsum('bkd,bk->bd', basis, jnp.einsum('bkd,bd->bk', basis, w))
  return w


def _bidiagonalise_until(matvec, rmatvec, p: int, q: int, batch: int, dtype,
                         key: Array, *, max_iters: int, log_tol: float,
                         both_ends: bool) -> tuple[Array, Array, Array]:
  """Golub-Kahan-Lanczos on a batch of A (q x p), grown in stages until every
  input's interval (``_ritz_interval``) is narrower than ``log_tol``.

  Full reorthogonalisation. Each stage pads the buffers and continues from
  the previous one; a stage runs (``lax.cond``) only while some input is
  unconverged, and updates only the unconverged inputs' intervals.

  Returns:
    (lo, hi, k): (B,) interval ends and the Krylov dimension each input used.
  """
  sizes = _stages(p, max_iters)
  start_key, loop_key = jax.random.split(key)
  v0 = jax.random.normal(start_key, (p,), dtype)
  v0 = jnp.broadcast_to(v0 / jnp.linalg.norm(v0), (batch, p))
  k0 = sizes[0]
  carry = (jnp.zeros((batch, k0 + 1, p), dtype).at[:, 0].set(v0),
           jnp.zeros((batch, k0, q), dtype), jnp.zeros((batch, k0), dtype),
           jnp.zeros((batch, k0), dtype), jnp.zeros((batch,), dtype))
  restart = jax.vmap(_restart_if_breakdown, in_axes=(0, 0, 0, None, 0))

  def iterate(j, carry):
    vs, us, alphas, betas, scale = carry
    ku, kv = jax.random.split(jax.random.fold_in(loop_key, j))
    u = _orthogonalise_rows(matvec(vs[:, j]), us)
    u_norm = jnp.linalg.norm(u, axis=1)
    scale = jnp.maximum(scale, u_norm)
    u, alpha = restart(u, u_norm, us, ku, scale)
    w = _orthogonalise_rows(rmatvec(u), vs)
    w_norm = jnp.linalg.norm(w, axis=1)
    scale = jnp.maximum(scale, w_norm)
    w, beta = restart(w, w_norm, vs, kv, scale)
    return (vs.at[:, j + 1].set(w), us.at[:, j].set(u), alphas.at[:, j].set(alpha),
            betas.at[:, j].set(beta), scale)

  def interval(carry, k):
    return jax.vmap(lambda a, b: _ritz_interval(a, b, k, p, both_ends))(
        carry[2], carry[3])

  carry = jax.lax.fori_loop(0, k0, iterate, carry)
  lo, hi = interval(carry, k0)
  iters = jnp.full((batch,), k0)
  for prev, size in zip(sizes, sizes[1:]):
    extra = size - prev
    vs, us, alphas, betas, scale = carry
    carry = (jnp.pad(vs, ((0, 0), (0, extra), (0, 0))),
             jnp.pad(us, ((0, 0), (0, extra), (0, 0))),
             jnp.pad(alphas, ((0, 0), (0, extra))), jnp.pad(betas, ((0, 0), (0, extra))),
             scale)

    def grow(args, prev=prev, size=size):
      carry, lo, hi, iters = args
      todo = _width(lo, hi) > log_tol
      carry = jax.lax.fori_loop(prev, size, iterate, carry)
      new_lo, new_hi = interval(carry, size)
      return (carry, jnp.where(todo, new_lo, lo), jnp.where(todo, new_hi, hi),
              jnp.where(todo, size, iters))

    args = (carry, lo, hi, iters)
    carry, lo, hi, iters = jax.lax.cond(
        jnp.any(_width(lo, hi) > log_tol), grow, lambda args: args, args)
  return lo, hi, iters


def matrix_free_log_condition_numbers(
    f: Function, xs: Array, *, rtol: float = 1e-2,
    inverse: Optional[Function] = None, max_iters: Optional[int] = None,
    chunk_size: Optional[int] = 32,
    key: Optional[Array] = None) -> MatrixFreeConditioning:
  """log kappa of f's Jacobian to relative tolerance ``rtol``, matrix-free.

  Golub-Kahan-Lanczos bidiagonalisation (one JVP and one VJP of f per
  iteration, no dense Jacobian), tested for convergence at Krylov dimensions
  8, 16, 24, ... (see ``_stages``) up to ``max_iters``: the Ritz residuals give an interval
  [log_kappa, log_kappa_upper] for the exact log kappa, and an input
  converges when it is narrower than log(1 + rtol) (so |error in kappa| <=
  rtol kappa). Inputs that do not converge are flagged, not dropped.

  * ``inverse`` given (f invertible, f^-1 its inverse): kappa =
    sigma_max(J_f(x)) * sigma_max(J_{f^-1}(f(x))), two top-end problems that
    converge in a few iterations whatever the spread of the spectrum.
  * Otherwise both ends of J's spectrum from one bidiagonalisation; the
    smallest singular value converges slowly when the small ones are dense
    (then the input is flagged unless ``max_iters`` reaches min(m, n), where
    the space is exhausted and the Ritz values are exact).
  * Rectangular J: sigma_min is the min(m, n)-th singular value.

  Caveat (as for any Krylov eigensolver, e.g. ARPACK, PROPACK): the residual
  certificate proves that a singular value lies near each extreme Ritz value,
  not that it is the extreme one; if the Krylov space has not yet found
  sigma_min's direction, the bottom Ritz value can sit, converged, on a
  larger singular value (misconvergence). Spaces of dimension <= EXHAUST_DIM
  are therefore always exhausted (exact), and so is any space once half of it
  has been explored without convergence (``_stages``); ``inverse`` needs only
  top ends, which random starts find first.

  Args:
    f: function of one input vector (n,) to an output vector (m,).
    xs: (B, n) inputs.
    rtol: relative tolerance on kappa, > 0.
    inverse: f's inverse (maps (m,) to (n,), m = n), if f is invertible.
    max_iters: the largest Krylov dimension tried (default
      min(min(m, n), 256)).
    chunk_size: inputs bidiagonalised together (batched JVPs/VJPs; memory
      ~ chunk_size * max_iters * min(m, n) floats); None: all at once.
    key: PRNG key of the start vectors (default ``PRNGKey(0)``; the same for
      every row).

  Returns:
    A ``MatrixFreeConditioning`` of (B,) arrays.
  """
  xs = jnp.asarray(xs)
  _check_inputs(xs, chunk_size)
  _check_vector_function(f, xs[0])
  if not rtol > 0:
    raise ValueError(f'expected rtol > 0, got {rtol}')
  if max_iters is not None and max_iters < 1:
    raise ValueError(f'expected max_iters >= 1 or None, got {max_iters}')
  max_iters = DEFAULT_MAX_ITERS if max_iters is None else max_iters
  out = jax.eval_shape(f, xs[0])
  if inverse is not None:
    back = jax.eval_shape(inverse, out)
    if out.shape != xs[0].shape or back.shape != xs[0].shape:
      raise ValueError(f'inverse needs a square map: expected f and inverse to map '
                       f'{xs[0].shape} to itself, got f: {out.shape}, inverse: '
                       f'{back.shape}')
  log_tol = math.log1p(rtol)
  key = jax.random.PRNGKey(0) if key is None else key

  def chunk(xs):
    solve = functools.partial(_bidiagonalise_until, batch=xs.shape[0],
                              dtype=xs.dtype, key=key, max_iters=max_iters)
    if inverse is None:
      return solve(*_linear_maps(f, xs), log_tol=log_tol, both_ends=True)
    top_lo, top_hi, k_top = solve(*_linear_maps(f, xs), log_tol=log_tol / 2,
                                  both_ends=False)
    inv_lo, inv_hi, k_inv = solve(*_linear_maps(inverse, jax.vmap(f)(xs)),
                                  log_tol=log_tol / 2, both_ends=False)
    return top_lo + inv_lo, top_hi + inv_hi, jnp.maximum(k_top, k_inv)

  # jit: one compiled program even when called eagerly (inlined under jit).
  lo, hi, iters = _chunked(jax.jit(chunk), xs, chunk_size)
  converged = _width(lo, hi) <= log_tol
  return MatrixFreeConditioning(lo, hi, converged, iters)


def _chunked(fn, xs: Array, chunk_size: Optional[int]):
  """``fn`` (a function of a (C, n) batch) on ``chunk_size`` rows at a time.

  The last chunk is padded with copies of the last row (dropped afterwards).
  """
  batch = xs.shape[0]
  if chunk_size is None or chunk_size >= batch:
    return fn(xs)
  chunks = -(-batch // chunk_size)
  padded = jnp.concatenate(
      [xs, jnp.broadcast_to(xs[-1], (chunks * chunk_size - batch, xs.shape[1]))])
  outs = jax.lax.map(fn, padded.reshape(chunks, chunk_size, xs.shape[1]))
  return jax.tree_util.tree_map(lambda o: o.reshape((-1,) + o.shape[2:])[:batch], outs)
