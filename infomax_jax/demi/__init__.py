"""DEMI: decomposed estimation of mutual information (Sordoni et al. 2021).

Split a view x into progressively more informed subviews
x^(1) ⊂ x^(2) ⊂ ... ⊂ x^(T) = x and sum, by the chain rule,

    I(x; y) = I(x^(1); y) + sum_{t=2}^T I(x^(t); y | x^(t-1)).

The first term is an ordinary InfoNCE on in-batch pairs; every other term is a
conditional InfoNCE (``bounds.conditional_infonce``) whose positive is the
paired y ~ p(y | x^(t)) and whose negatives come from p(y | x^(t-1)). Each term
is capped at log K by itself, so the sum can exceed the log K ceiling of a
single InfoNCE on (x, y).

This package supplies what the bounds need and is not a bound itself
(``views``: the Gaussian test bed; ``estimation``: the rest):

* ``GaussianViews``: jointly Gaussian (x, y) with closed-form (conditional)
  MIs from covariance log-determinants, an exact sampler of p(y | x_S) (the
  *oracle* negatives) and the optimal critics log p(y | x_S) / p(y | x_G);
* ``importance_resample``: the *approximate* negatives, in-batch y_j resampled
  for each example i with self-normalised weights ∝ exp ψ(x_i^(t-1), y_j), ψ the
  unconditional critic (p(y | x') = p(y) e^{ψ*(x', y)} / Z(x'));
* broadcasting pair critics ``critic(x[..., dx], y[..., dy]) -> (...)`` that
  score both the K x K in-batch matrix (``x[:, None], y[None]``) and per-example
  negative sets (``x[:, None], y_sets``) of shape (B, N, dy);
* ``estimate_terms``: the per-term estimates of a chain of critics on a batch,
  with oracle, resampled or importance-reweighted negatives;
* ``chain_objective`` and ``batch_mean``: the metrics, the training loss and
  the fixed-batch evaluation of a chain of critics trained by a method of
  ``METHODS`` (InfoNCE or DEMI with one kind of negatives).

Subviews are given as nested 0/1 masks over the coordinates of x (the critic of
term t sees ``x * masks[t]``); ``prefix_masks`` builds contiguous ones,
``row_masks`` bands of image rows.

Reference: A. Sordoni, N. Dziri, H. Schulz, G. Gordon, P. Bachman, R. Tachet des
Combes, "Decomposed Mutual Information Estimation for Contrastive
Representation Learning", ICML 2021.
"""

from infomax_jax.demi.estimation import METHOD_LABELS
from infomax_jax.demi.estimation import METHODS
from infomax_jax.demi.estimation import NEGATIVES
from infomax_jax.demi.estimation import PAIR_CRITICS
from infomax_jax.demi.estimation import ConcatPairCritic
from infomax_jax.demi.estimation import SeparablePairCritic
from infomax_jax.demi.estimation import batch_mean
from infomax_jax.demi.estimation import chain_objective
from infomax_jax.demi.estimation import effective_sample_size
from infomax_jax.demi.estimation import estimate_terms
from infomax_jax.demi.estimation import importance_resample
from infomax_jax.demi.estimation import make_pair_critic
from infomax_jax.demi.estimation import method_masks
from infomax_jax.demi.estimation import pairwise_scores
from infomax_jax.demi.estimation import set_scores
from infomax_jax.demi.views import GaussianViews
from infomax_jax.demi.views import check_masks
from infomax_jax.demi.views import correlated_gaussian_covariance
from infomax_jax.demi.views import gaussian_conditional_mi
from infomax_jax.demi.views import prefix_masks
from infomax_jax.demi.views import row_masks
