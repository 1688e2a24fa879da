"""Independent references for the bound tests: numpy loops and closed forms.

Nothing here calls ``infomax_jax.bounds``: every formula is written from the
papers, as plain Python loops over a score matrix (positives on the diagonal),
so that the tests compare the library against something else.
"""

import math

import numpy as np
from scipy import optimize
from scipy import special

from infomax_jax import distributions

# A hand-made 3 x 3 score matrix and a log-baseline a(y_j), one per column.
S3 = np.array([[1.2, -0.4, 0.3],
               [0.5, 2.0, -1.1],
               [-0.7, 0.8, 0.6]])
A3 = np.array([0.3, -0.2, 0.9])


def off(k):
  return [(i, j) for i in range(k) for j in range(k) if i != j]


def joint(s):
  return sum(s[i, i] for i in range(len(s))) / len(s)


def dv(s):
  pairs = off(len(s))
  return joint(s) - math.log(sum(math.exp(s[i, j]) for i, j in pairs) / len(pairs))


def nwj(s):
  pairs = off(len(s))
  return joint(s) - sum(math.exp(s[i, j] - 1.0) for i, j in pairs) / len(pairs)


def infonce(s):
  k = len(s)
  rows = [s[i, i] - math.log(sum(math.exp(s[i, j]) for j in range(k)))
          for i in range(k)]
  return math.log(k) + sum(rows) / k


def softplus(z):
  return math.log1p(math.exp(z))


def jsd(s):
  pairs = off(len(s))
  return (-sum(softplus(-s[i, i]) for i in range(len(s))) / len(s)
          - sum(softplus(s[i, j]) for i, j in pairs) / len(pairs))


def tuba(s, a):
  k, pairs = len(s), off(len(s))
  return (1.0 + sum(s[i, i] - a[i] for i in range(k)) / k
          - sum(math.exp(s[i, j] - a[j]) for i, j in pairs) / len(pairs))


def interpolated(s, a, alpha):
  # Poole et al. (2019) Eq. 12: m_{-i}(y_j) = mean_{k != i} e^{f(x_k, y_j)},
  # b_ij = alpha m_{-i}(y_j) + (1 - alpha) e^{a(y_j)},
  # I = 1 + E_{i!=j}[f_jj - log b_ij] - E_{i!=j}[e^{f_ij} / b_jj].
  k, pairs = len(s), off(len(s))

  def b(i, j):
    m = sum(math.exp(s[r, j]) for r in range(k) if r != i) / (k - 1)
    return alpha * m + (1.0 - alpha) * math.exp(a[j])
  joint_term = sum(s[j, j] - math.log(b(i, j)) for i, j in pairs) / len(pairs)
  marg = sum(math.exp(s[i, j]) / b(j, j) for i, j in pairs) / len(pairs)
  return 1.0 + joint_term - marg


def smile(s, tau):
  clip = (lambda z: z) if tau is None else (lambda z: min(max(z, -tau), tau))
  pairs = off(len(s))
  return joint(s) - math.log(
      sum(math.exp(clip(s[i, j])) for i, j in pairs) / len(pairs))


# Nowozin et al. (2016) Table 2 as printed: output activation g_f and the
# conjugate f* (not the simplified compositions used by the library).
TABLE2 = {
    'total_variation': (lambda v: 0.5 * math.tanh(v), lambda t: t),
    'kl': (lambda v: v, lambda t: math.exp(t - 1.0)),
    'reverse_kl': (lambda v: -math.exp(-v), lambda t: -1.0 - math.log(-t)),
    'pearson': (lambda v: v, lambda t: t * t / 4.0 + t),
    'neyman': (lambda v: 1.0 - math.exp(-v),
               lambda t: 2.0 - 2.0 * math.sqrt(1.0 - t)),
    'squared_hellinger': (lambda v: 1.0 - math.exp(-v),
                          lambda t: t / (1.0 - t)),
    'jeffrey': (lambda v: v, lambda t: (
        special.lambertw(math.exp(1.0 - t)).real
        + 1.0 / special.lambertw(math.exp(1.0 - t)).real + t - 2.0)),
    'jensen_shannon': (lambda v: math.log(2.0) - math.log1p(math.exp(-v)),
                       lambda t: -math.log(2.0 - math.exp(t))),
    'gan': (lambda v: -math.log1p(math.exp(-v)),
            lambda t: -math.log(1.0 - math.exp(t))),
}


def f_divergence_scores(s, divergence):
  g, conj = TABLE2[divergence]
  pairs = off(len(s))
  return (sum(g(s[i, i]) for i in range(len(s))) / len(s)
          - sum(conj(g(s[i, j])) for i, j in pairs) / len(pairs))


# The optimal f-GAN critic as a function of t = log p/q:
# v*(t) = g_f^{-1}(f'(e^t)) (Nowozin et al. 2016, Sec. 2-3), for every
# divergence whose optimum is finite.
V_STAR = {
    'kl': lambda t: 1.0 + t,
    'reverse_kl': lambda t: t,
    'pearson': lambda t: 2.0 * (np.exp(t) - 1.0),
    'neyman': lambda t: 2.0 * t,
    'squared_hellinger': lambda t: 0.5 * t,
    'jeffrey': lambda t: t + 1.0 - np.exp(-t),
    'jensen_shannon': lambda t: t,
    'gan': lambda t: t,
}


def log_ratio(v, divergence):
  """log p/q at which the critic output v is optimal: V_STAR inverted by root finding."""
  v_star = V_STAR[divergence]
  return optimize.brentq(lambda t: v_star(t) - v, -60.0, 60.0, xtol=1e-14)


def huge_scores():
  """(5, 5) float64 score matrices with entries of +-1e4 (overflow checks)."""
  rng = np.random.default_rng(15)
  random = 1e4 * rng.choice([-1.0, 1.0], size=(5, 5))
  separated = np.where(np.eye(5, dtype=bool), 1e4, -1e4)
  return [random, separated, -separated, np.full((5, 5), 1e4),
          np.full((5, 5), -1e4)]


def gaussian_scores(rng, k, d, mi, num_batches=1, independent=False,
                    critic_mi=None):
  """Optimal-critic scores on correlated Gaussian batches, shape (k, k, B).

  x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps; the score is the closed-form
  log density ratio f*(x, y) = log N(y; rho x, (1 - rho^2) I) - log N(y; 0, I)
  (float64 numpy). ``independent`` draws y independently of x;
  ``critic_mi`` evaluates the optimal critic of another MI level.
  """
  rho = distributions.mi_to_rho(mi, d)
  rho_c = rho if critic_mi is None else distributions.mi_to_rho(critic_mi, d)
  s2 = 1.0 - rho_c**2
  out = np.empty((k, k, num_batches))
  for b in range(num_batches):
    x = rng.standard_normal((k, d))
    eps = rng.standard_normal((k, d))
    y = eps if independent else rho * x + math.sqrt(1.0 - rho**2) * eps
    y2 = np.sum(y**2, axis=1)
    x2 = np.sum(x**2, axis=1)
    sq = y2[None, :] - 2.0 * rho_c * x @ y.T + rho_c**2 * x2[:, None]
    out[:, :, b] = -0.5 * d * math.log(s2) - sq / (2.0 * s2) + 0.5 * y2[None, :]
  return out
