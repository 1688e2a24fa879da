"""The f-GAN family of variational divergence bounds (Nowozin et al. 2016).

For a convex f with f(1) = 0 and its conjugate f*, every critic output v gives

    D_f(P || Q) >= E_P[g_f(v)] - E_Q[f*(g_f(v))],

with the output activation g_f of Nowozin et al. (2016, Table 2); the bound
is tight at v* = g_f^{-1}(f'(p/q)). With P = p(x, y) (the diagonal of a score
matrix) and Q = p(x) p(y) (its off-diagonal) the KL member is the MI bound NWJ;
the others bound other divergences, but their optimal critics still encode the
density ratio: ``critic_log_ratio`` inverts v*(p/q), which the registry uses to
report an MI estimate (NWJ of the implied log-ratio) for every member but
total variation.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp

from infomax_jax.bounds import core

Array = jax.Array
ArrayLike = core.ArrayLike
exp_saturating = core.exp_saturating

LOG2 = math.log(2.0)


def _lambertw_exp_impl(z: Array) -> Array:
  """W(e^z), the principal Lambert W of e^z, by Newton on w + log w = z."""
  tiny = z < -20.0       # W(e^z) = e^z (1 - e^z + ...): e^z is exact to 1e-9
  zs = jnp.where(tiny, 0.0, z)
  w = jnp.where(zs < 1.0, jnp.exp(jnp.minimum(zs, 1.0)),
                jnp.maximum(zs, 1.0) - jnp.log(jnp.maximum(zs, 1.0)))
  for _ in range(12):   # quadratic convergence from this start; 12 is plenty
    w = w * (1.0 + zs - jnp.log(w)) / (1.0 + w)
  return jnp.where(tiny, jnp.exp(z), w)


@jax.custom_jvp
def lambertw_exp(z: Array) -> Array:
  """W(e^z) for real z, finite for all float32 z (used by the Jeffrey conjugate)."""
  return _lambertw_exp_impl(z)


@lambertw_exp.defjvp
def _lambertw_exp_jvp(primals, tangents):
  (z,), (dz,) = primals, tangents
  w = _lambertw_exp_impl(z)
  return w, dz * w / (1.0 + w)   # d/dz W(e^z) = W / (1 + W)


def _jeffrey_conjugate(v: Array) -> Array:
  # f*(t) = W(e^{1-t}) + 1/W(e^{1-t}) + t - 2, and 1/W(e^z) = e^{W(e^z) - z}.
  z = 1.0 - v
  w = lambertw_exp(z)
  return w + exp_saturating(w - z) + v - 2.0


def _log1p_clamped(u: Array) -> Array:
  return jnp.log(jnp.maximum(1.0 + u, 1e-30))


Fn = Callable[[Array], Array]

# name -> (E_P term g_f(v), E_Q term f*(g_f(v)), log p/q at which v is optimal
# or None), the compositions simplified analytically (Nowozin et al. 2016,
# Table 2); the third map inverts v* = g_f^{-1}(f'(p/q)).
_F_DIVERGENCES: dict[str, tuple[Fn, Fn, Fn | None]] = {
    'total_variation': (lambda v: 0.5 * jnp.tanh(v), lambda v: 0.5 * jnp.tanh(v),
                        None),                    # v* = +-inf: the sign only
    'kl': (lambda v: v, lambda v: exp_saturating(v - 1.0), lambda v: v - 1.0),
    'reverse_kl': (lambda v: -exp_saturating(-v), lambda v: v - 1.0,
                   lambda v: v),
    'pearson': (lambda v: v, lambda v: 0.25 * v * v + v,
                lambda v: _log1p_clamped(0.5 * v)),   # v* = 2 (p/q - 1)
    'neyman': (lambda v: 1.0 - exp_saturating(-v),
               lambda v: 2.0 - 2.0 * exp_saturating(-0.5 * v),
               lambda v: 0.5 * v),
    'squared_hellinger': (lambda v: 1.0 - exp_saturating(-v),
                          lambda v: exp_saturating(v) - 1.0,
                          lambda v: 2.0 * v),
    # v* = t + 1 - e^{-t} with t = log p/q, so t = v - 1 + W(e^{1 - v}).
    'jeffrey': (lambda v: v, _jeffrey_conjugate,
                lambda v: v - 1.0 + lambertw_exp(1.0 - v)),
    'jensen_shannon': (lambda v: LOG2 - jax.nn.softplus(-v),
                       lambda v: jax.nn.softplus(v) - LOG2, lambda v: v),
    'gan': (lambda v: -jax.nn.softplus(-v), jax.nn.softplus, lambda v: v),
}

F_DIVERGENCES = tuple(sorted(_F_DIVERGENCES))


def _divergence_terms(divergence: str):
  if divergence not in _F_DIVERGENCES:
    raise ValueError(f'unknown divergence {divergence!r}; valid divergences are: '
                     f'{", ".join(F_DIVERGENCES)}')
  return _F_DIVERGENCES[divergence]


def f_divergence(t_p: ArrayLike, t_q: ArrayLike, divergence: str) -> Array:
  """f-GAN variational lower bound D_f(P||Q) >= E_P[g_f(v)] - E_Q[f*(g_f(v))].

  Args:
    t_p: raw critic outputs v on samples of P, any shape (averaged).
    t_q: raw critic outputs v on samples of Q, any shape (averaged).
    divergence: one of ``F_DIVERGENCES``: total_variation, kl, reverse_kl,
      pearson, neyman, squared_hellinger, jeffrey, jensen_shannon, gan
      (Nowozin et al. 2016, Table 2 parametrisation; jensen_shannon bounds
      2 JS(P||Q), gan bounds 2 JS(P||Q) - log 4, total_variation bounds
      (1/2) int |p - q|).

  Returns:
    Scalar lower bound (nats for the KL-type divergences).
  """
  g, conj, _ = _divergence_terms(divergence)
  t_p = core.as_float(t_p, 'f_divergence: t_p')
  t_q = core.as_float(t_q, 'f_divergence: t_q')
  if t_p.size == 0 or t_q.size == 0:
    raise ValueError(f'f_divergence: t_p and t_q must be non-empty, got shapes '
                     f'{t_p.shape} and {t_q.shape}')
  return jnp.mean(g(t_p)) - jnp.mean(conj(t_q))


def f_divergence_scores(scores: ArrayLike, divergence: str) -> Array:
  """``f_divergence`` on a score matrix: P = joint (diagonal), Q = marginals.

  With D = KL this lower-bounds I(X; Y). The Q average runs exactly over the
  K(K-1) off-diagonal entries; (K, K, L) scores give the mean over locations.

  Args:
    scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.
    divergence: see ``f_divergence``.

  Returns:
    Scalar lower bound on D_f(p(x, y) || p(x) p(y)).
  """
  g, conj, _ = _divergence_terms(divergence)

  @core.per_location
  def bound(s):
    return core.joint_mean(g(s)) - core.marginal_mean(conj(s))

  bound.__name__ = 'f_divergence_scores'
  return bound(scores)


def critic_log_ratio(v: ArrayLike, divergence: str) -> Array:
  """log p/q at which the critic output v is optimal for ``divergence``.

  The inverse of the optimal critic v*(p/q) = g_f^{-1}(f'(p/q)): kl v - 1,
  reverse_kl v, pearson log(1 + v/2) (clamped where v <= -2), neyman v/2,
  squared_hellinger 2v, jeffrey v - 1 + W(e^{1-v}), jensen_shannon and gan v.
  Total variation's optimal critic is +-inf (the sign of log p/q) and has none.

  Args:
    v: critic outputs, any shape.
    divergence: one of ``F_DIVERGENCES`` except 'total_variation'.

  Returns:
    The implied log density ratio, shaped like ``v``.
  """
  ratio = _divergence_terms(divergence)[2]
  if ratio is None:
    raise ValueError(f'critic_log_ratio: the {divergence} critic does not '
                     'determine the density ratio (its optimum is the sign of '
                     f'log p/q); valid divergences are: '
                     f'{", ".join(d for d in F_DIVERGENCES if _F_DIVERGENCES[d][2])}')
  return ratio(core.as_float(v, 'critic_log_ratio: v'))
