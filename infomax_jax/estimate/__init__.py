"""Estimate I(X; Y) and I(X; Y | Z) from arrays of samples with any bound and critic.

    result = estimate_mi(x, y)                     # InfoNCE, concat critics
    print(result.mi, result.interval, result.estimator)
    result = estimate_mi(x, y, bound='smile', critic='concat',
                         bound_kwargs={'clip': 5.0})
    cond = estimate_cmi(x, y, z)                   # I(X; (Y, Z)) - I(X; Z)
    print(cond.cmi, cond.interval)

What ``estimate_mi`` does:

1. Checks the inputs ((n, d) arrays, same n, finite values, no constant
   column, enough samples),
   shuffles them and holds out a test split (``test_fraction``).
2. Standardises every coordinate with a monotone map fitted on the training
   split (``standardize``): by default the rank-Gaussian map
   v -> Phi^{-1}(F_n(v)) with F_n the empirical CDF, which gives every
   coordinate standard normal margins; or z-scores. MI is invariant to
   invertible per-coordinate maps, and the rank map makes the estimate
   invariant to them too: heavy tails (a z-scored Cauchy sample squashes its
   bulk into a tiny interval) and marginal distortions disappear before the
   critic sees the data. Unit scales keep the critic's initialisation and
   learning rate meaningful.
3. Trains the critic (``infomax_jax.critics``) by maximising the chosen bound
   (``infomax_jax.bounds``) with Adam on batches of ``batch_size`` pairs drawn
   without replacement (a fresh permutation per epoch). Defaults: peak learning
   rate 2e-2, cosine-decayed to 5 % of it over at most 600 steps
   (``lr_schedule``), held-out evaluation every 100 steps, patience 3: as
   accurate on the BMI-family suite as the earlier constant 3e-3 over 3000
   steps, at a fifth of the steps (docs/notes/issue19.md). The whole optimisation
   is one jitted ``lax.while_loop`` over chunks of ``eval_every`` steps, each
   chunk a ``lax.scan``; between chunks the held-out estimate is computed on
   device, the best parameters are kept, and training stops after
   ``patience`` evaluations without improvement. There are no host round
   trips during training. Bounds with a baseline input (``tuba``,
   ``interpolated``) learn a(y) (a small MLP) jointly with the critic;
   stateful ones (``mine``) carry their state in the scan. Data parallel:
   the fit runs on a ``'data'`` mesh of every device (``mesh``); the samples
   and parameters are replicated, and every training batch and held-out batch
   is sharded over the devices along its K pairs (``parallel.shard_batch``; a
   K that does not divide over the devices stays replicated), so the K x K
   scores and the bounds still use the whole batch. On one device this
   changes nothing.
   An ensemble of ``ensemble`` (default 2) critics, each with its own
   initialisation and batch order, trains in the same program (the critics
   are ``vmap``ped; the loop runs until every one has exhausted its
   patience, and each keeps its own best parameters).
4. Reports the held-out estimate of the best parameters. Default (InfoNCE,
   ``all_pairs``): the critic is the mean of the ensemble's scores, and
   InfoNCE is computed with K = n_test, every held-out x against every
   held-out y (in blocks of 128 x 128, O(block^2) memory):

       mi = (1/n) sum_i t_i,   t_i = log n + f_ii - logsumexp_j f_ij,

   which removes most of InfoNCE's small-K bias (log 5000 = 8.5 nats at
   10 000 samples instead of log 256 = 5.5) at the cost of one n^2 pass.
   InfoNCE is concave in the scores, so the mean critic scores at least the
   members' mean. stderr combines the rows' spread and the ensemble's:

       stderr^2 = var_i(t_i) / n + var_e(mi_e) / E,

   and ``interval`` = mi +- z stderr (``confidence``, default 95 %). The
   interval covers sampling and optimisation noise, not the bias of a lower
   bound: where the critic cannot learn the density ratio (or the MI is
   high), the estimate sits below the truth by more than the interval.
   Measured over 20 repetitions of 27 benchmark tasks (10 000 samples;
   results/estimators_issue19/session8/report.md): where the bias is within
   one standard error the 95 % interval covers the truth 85-100 % of the
   time; on heavy-tailed, 5-D/25-D, spiral and high-MI tasks 0-60 %, while
   it still holds the estimator's own mean on 18 of the 27. Otherwise (other eval
   bounds, or ``all_pairs=False``): the test split is cut into B disjoint
   batches of K = min(batch_size, n_test) pairs, the evaluation bound is
   computed on each batch's K x K score matrix, and mi = (1/B) sum_b I_b
   (averaged over the ensemble), stderr = std_b(I_b) / sqrt(B) combined
   with the ensemble's spread as above.

5. Guards the result (see "Failures" below): an evaluation counts only when
   its estimate is finite, its scores are small enough for float32 to resolve
   the estimate, and it respects the bound's ceiling; the reported estimate is
   the best usable one.

Failures. ``estimate_mi`` never returns a number it knows to be meaningless.
A held-out evaluation is *unusable* when

* its estimate or its scores are not finite;
* its scores are too large for their dtype: with M = max |f| over the held-out
  score matrices (and the baseline a(y)), float32 rounds scores in steps of
  about eps M (eps = 1.2e-7), and the estimate is rounding noise once
  eps M > ``SCORE_RESOLUTION`` (0.05 nats, i.e. M > 4.2e5): InfoNCE's
  ``log K + mean(f_ii - logsumexp_j f_ij)`` loses its ``+ log K`` and the
  differences f_ii - f_ij, and returns log K (or anything) on independent
  samples;
* it exceeds the bound's ceiling (``ceiling``: log K for InfoNCE, K the
  held-out batch size) by more than ``CEILING_TOLERANCE`` plus eps M.

Unusable evaluations are never selected as the best, and count against the
patience. The fit *fails* when no evaluation was usable, when the training
bound became non-finite before the reported evaluation, or when the best
estimate is below ``FLOOR`` (-1 nat): every reported estimate in the registry
is 0 at a constant critic (InfoNCE, DV, MINE, SMILE at f = 0; NWJ, TUBA and the
NWJ reports of jsd and the f-divergences at the constant whose implied log
density ratio is 0), so a best estimate below -1 nat means that training
diverged, not that the MI is negative. A failure raises ``EstimationError``
(a ``RuntimeError``, and a ``FloatingPointError`` as non-finite estimates
raised before), whose message gives the reason, the bounds and the value that
would have been reported; ``on_failure='nan'`` instead returns an
``MIEstimate`` with ``mi`` = ``stderr`` = nan, ``failed=True`` and the
``reason`` (and warns). Warnings (``warnings.warn``), the estimate standing:
a ``CeilingWarning`` when the estimate is within ``NEAR_CEILING`` (5%) or
``NEAR_CEILING_NATS`` (1.5 nats) of the bound's ceiling log K (K = n_test
for the all-pairs estimate: InfoNCE's bias grows there; the true MI may be
far larger: use more samples or a bound without a ceiling), and a
``RuntimeWarning`` when training diverged
after the reported evaluation or some evaluations were unusable.

Inputs. Non-finite samples raise a ValueError naming the array and the first
bad index. Standardisation is computed in float64 on the host (z-scores after
dividing each coordinate by its largest magnitude, so that nothing
overflows; a constant coordinate is centred and left unscaled) and only its
output is cast to float32; ``standardize='none'`` rejects samples beyond
float32's range.

Held-out estimator: the training bound's reported estimate in the registry
(``bounds.get(bound).estimate``): the value itself for dv, nwj, infonce, tuba,
interpolated and smile; DV for mine (MINE's value *is* DV; only its gradient
differs); for jsd (and the f-divergences) NWJ of the log density ratio its
critic implies, nwj(f + 1): the JS objective is not an MI estimate, but its
optimal critic is log p(x, y) / (p(x) p(y)), at which nwj(f + 1) is the MI.
``eval_bound`` names another registry entry whose estimate to report instead.

Caveats: the reported value is the held-out estimate at the evaluation that
scored best, so it carries a small upward selection bias (of the order of the
standard error; the estimates of successive evaluations are strongly
correlated). InfoNCE never exceeds log K; NWJ, DV, MINE and SMILE can exceed
the truth on a finite test batch (DV and SMILE through the log of a sample
mean).

Conditional MI: ``estimate_cmi(x, y, z)`` = I(X; (Y, Z)) - I(X; Z) with the
same settings and split for both terms (``conditional``: its bias, which is
usually negative, and its conservative interval).

Modules: ``core`` (the critic, the jitted fit, ``estimate_mi``),
``conditional`` (``estimate_cmi``), ``inputs``
(checks and standardisation), ``guards`` (``MIEstimate``, ``EstimationError``,
``CeilingWarning`` and the checks of "Failures").

References: Belghazi et al. 2018 (MINE); Poole et al. 2019 (bounds and
critics); Song & Ermon 2020 (SMILE); Czyz et al. 2023 (BMI benchmark).
"""

from infomax_jax.estimate import conditional
from infomax_jax.estimate import core
from infomax_jax.estimate import guards
from infomax_jax.estimate import inputs
from infomax_jax.estimate.conditional import CMIEstimate
from infomax_jax.estimate.conditional import estimate_cmi
from infomax_jax.estimate.core import BASELINE_HIDDEN
from infomax_jax.estimate.core import CRITIC_DEFAULTS
from infomax_jax.estimate.core import estimate_mi
from infomax_jax.estimate.guards import CEILING_TOLERANCE
from infomax_jax.estimate.guards import FLOOR
from infomax_jax.estimate.guards import NEAR_CEILING
from infomax_jax.estimate.guards import NEAR_CEILING_NATS
from infomax_jax.estimate.guards import ON_FAILURE
from infomax_jax.estimate.guards import SCORE_RESOLUTION
from infomax_jax.estimate.guards import CeilingWarning
from infomax_jax.estimate.guards import EstimationError
from infomax_jax.estimate.guards import MIEstimate
from infomax_jax.estimate.guards import ceiling
from infomax_jax.estimate.inputs import STANDARDIZATIONS
