"""Mutual-information estimators on score arrays, and the one registry of them.

Modules (every function is pure and takes scores, never a network):
  core         dv, nwj, infonce, tuba, interpolated, smile, mine, jsd on a
               (K, K) or (K, K, L) score matrix (positives on the diagonal).
  fgan         the f-divergence family of Nowozin et al. (2016).
  conditional  conditional InfoNCE and the DEMI chain rule (Sordoni et al. 2021).
  streaming    the same bounds on embeddings x, y with f = <x, y>, streamed over
               column blocks (custom_vjp) and sharded over devices.

The registry maps a config name (``config.bound = 'jsd'``) to a ``Bound``: the
function, whether it is a variational lower bound on I(X; Y), the MI estimate
it reports, and what else it needs. One call gives everything a training step
or an evaluation needs::

  spec = bounds.get('jsd')
  out = spec(scores)                 # Value(objective, estimate, state)
  loss = -out.objective              # JSD trains the critic ...
  mi = out.estimate                  # ... and reports nwj(scores + 1)

  spec = bounds.get('mine')
  state = spec.init_state()
  out = spec(scores, state=state, momentum=0.9)   # out.state: the new EMA

Reported estimates (``Bound.reports``): the value itself for dv, nwj, infonce,
tuba, interpolated, smile and f_kl; DV (its value, without the state) for
mine; for jsd and the other f-divergences NWJ of the log density ratio their
critic implies (``fgan.critic_log_ratio`` + 1), which is tight at their optimal
critic and a lower bound for any critic; f_total_variation reports none.
"""

import dataclasses
import functools
import types
from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax

from infomax_jax import registry
from infomax_jax.bounds import conditional
from infomax_jax.bounds import core
from infomax_jax.bounds import fgan
from infomax_jax.bounds import streaming
from infomax_jax.bounds.conditional import conditional_infonce
from infomax_jax.bounds.conditional import demi
from infomax_jax.bounds.conditional import demi_terms
from infomax_jax.bounds.core import MineState
from infomax_jax.bounds.core import as_float
from infomax_jax.bounds.core import check_scores
from infomax_jax.bounds.core import dv
from infomax_jax.bounds.core import exp_saturating
from infomax_jax.bounds.core import infonce
from infomax_jax.bounds.core import interpolated
from infomax_jax.bounds.core import joint_mean
from infomax_jax.bounds.core import jsd
from infomax_jax.bounds.core import marginal_logmeanexp
from infomax_jax.bounds.core import marginal_mean
from infomax_jax.bounds.core import mine
from infomax_jax.bounds.core import mine_init
from infomax_jax.bounds.core import nwj
from infomax_jax.bounds.core import smile
from infomax_jax.bounds.core import tuba
from infomax_jax.bounds.fgan import F_DIVERGENCES
from infomax_jax.bounds.fgan import critic_log_ratio
from infomax_jax.bounds.fgan import f_divergence
from infomax_jax.bounds.fgan import f_divergence_scores
from infomax_jax.bounds.fgan import lambertw_exp

Array = jax.Array

BASELINE, STATE = 'log_baseline', 'state'


class Value(NamedTuple):
  """What a registry entry gives on one batch of scores.

  Attributes:
    objective: the value the critic maximises (its gradient trains it).
    estimate: the MI estimate to report, in nats; None for an entry that has
      none (f_total_variation).
    state: the entry's new state (MINE's ``MineState``); None when stateless.
  """
  objective: Array
  estimate: Optional[Array]
  state: Any


@dataclasses.dataclass(frozen=True)
class Bound:
  """One registry entry: an estimator on scores and how to use it.

  Attributes:
    name: the registry name.
    fn: ``fn(scores, [log_baseline], [state], **hyperparameters)``, returning
      the value, or ``(value, new_state)`` when ``state`` is an input.
    lower_bound: whether ``fn``'s value is a variational lower bound on I(X; Y):
      at most I for every critic (in expectation over batches; DV and MINE
      through the log of a batch mean only approximately) and equal to I at
      the optimal critic (InfoNCE: up to its log K ceiling). False for
      training proxies (jsd), bounds on other divergences (f_*) and SMILE.
    reports: the reported MI estimate, in words.
    report: ``scores -> estimate`` when the estimate is not ``fn``'s value
      (None: the value is the estimate).
    mi_estimate: False when the entry reports no MI estimate.
    inputs: the arrays ``fn`` takes besides the scores: 'log_baseline' (a(y),
      a scalar or (K,)) and/or 'state' (from ``init_state``).
    hyperparameters: ``fn``'s keyword arguments and their defaults, as pairs.
    state_init: ``(num_locations=None) -> state`` of a stateful entry.
    reference: the paper.
  """
  name: str
  fn: Callable[..., Any]
  lower_bound: bool
  reports: str = 'the value'
  report: Optional[Callable[[Array], Array]] = None
  mi_estimate: bool = True
  inputs: tuple[str, ...] = ()
  hyperparameters: tuple[tuple[str, Any], ...] = ()
  state_init: Optional[Callable[..., Any]] = None
  reference: str = ''

  @property
  def defaults(self) -> dict[str, Any]:
    """The hyperparameters as a dict (keyword -> default)."""
    return dict(self.hyperparameters)

  @property
  def needs_baseline(self) -> bool:
    return BASELINE in self.inputs

  @property
  def stateful(self) -> bool:
    return STATE in self.inputs

  def init_state(self, num_locations: Optional[int] = None) -> Any:
    """The initial state (None for a stateless entry); L locations for (K, K, L)."""
    return None if self.state_init is None else self.state_init(num_locations)

  def options(self, given: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The defaults updated with ``given``; unknown keywords raise, listing valid ones."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(self.defaults))
    if unknown:
      raise ValueError(f'unknown hyperparameters for bound {self.name!r}: '
                       f'{unknown}; valid keys are: '
                       f'{", ".join(sorted(self.defaults)) or "none"}')
    return {**self.defaults, **given}

  def _args(self, log_baseline, state, need_state: bool) -> list:
    args = []
    for name, value, needed in ((BASELINE, log_baseline, BASELINE in self.inputs),
                                (STATE, state, need_state and STATE in self.inputs)):
      if needed and value is None:
        raise ValueError(f'bound {self.name!r} needs {name} (its inputs: '
                         f'{", ".join(self.inputs)})')
      if value is not None and name not in self.inputs:
        raise ValueError(f'bound {self.name!r} takes no {name} (its inputs: '
                         f'{", ".join(self.inputs) or "the scores only"})')
      if needed:
        args.append(value)
    return args

  def __call__(self, scores: Array, *, log_baseline: Optional[Array] = None,
               state: Any = None, **hyperparameters: Any) -> Value:
    """The objective, the reported estimate and the new state on ``scores``.

    Args:
      scores: (K, K) or (K, K, L) critic scores, positives on the diagonal.
      log_baseline: a(y), scalar or (K,), for entries with that input.
      state: the previous state, for stateful entries (``init_state``).
      **hyperparameters: overrides of ``defaults``.

    Returns:
      A ``Value``.
    """
    args = self._args(log_baseline, state, need_state=True)
    out = self.fn(scores, *args, **self.options(hyperparameters))
    value, new_state = out if self.stateful else (out, None)
    if not self.mi_estimate:
      return Value(value, None, new_state)
    estimate = value if self.report is None else self.report(scores)
    return Value(value, estimate, new_state)

  def estimate(self, scores: Array, *, log_baseline: Optional[Array] = None,
               **hyperparameters: Any) -> Array:
    """The reported MI estimate alone (no state needed: MINE reports DV)."""
    if not self.mi_estimate:
      raise ValueError(f'bound {self.name!r} reports no MI estimate '
                       f'({self.reports})')
    args = self._args(log_baseline, None, need_state=False)
    kwargs = self.options(hyperparameters)
    if self.report is not None:
      return self.report(scores)
    return self.fn(scores, *args, **kwargs)


def _nwj_of_log_ratio(divergence: str, name: str) -> Callable[[Array], Array]:
  """scores -> NWJ of 1 + the log density ratio the f-GAN critic implies."""
  if divergence in ('gan', 'jensen_shannon'):   # the critic is log p/q itself
    return lambda scores: nwj(check_scores(scores, name) + 1.0)
  return lambda scores: nwj(critic_log_ratio(check_scores(scores, name),
                                             divergence) + 1.0)


def _f_bound(divergence: str) -> Bound:
  fn = functools.partial(f_divergence_scores, divergence=divergence)
  ref = 'Nowozin et al. 2016 (f-GAN)'
  if divergence == 'kl':
    return Bound('f_kl', fn, lower_bound=True, reference=ref)
  if divergence == 'total_variation':
    return Bound('f_total_variation', fn, lower_bound=False, mi_estimate=False,
                 reports='none: the optimal critic is the sign of log p/q',
                 reference=ref)
  return Bound(f'f_{divergence}', fn, lower_bound=False,
               reports='nwj(critic_log_ratio(scores) + 1)',
               report=_nwj_of_log_ratio(divergence, f'f_{divergence}'),
               reference=ref)


_ENTRIES = (
    Bound('dv', dv, lower_bound=True, reference='Donsker & Varadhan 1983'),
    Bound('nwj', nwj, lower_bound=True, reference='Nguyen et al. 2010'),
    Bound('infonce', infonce, lower_bound=True,
          reference='van den Oord et al. 2018'),
    Bound('tuba', tuba, lower_bound=True, inputs=(BASELINE,),
          reference='Poole et al. 2019, Eq. 8'),
    Bound('interpolated', interpolated, lower_bound=True, inputs=(BASELINE,),
          hyperparameters=(('alpha', 0.01),),
          reference='Poole et al. 2019, Eq. 12'),
    Bound('smile', smile, lower_bound=False, reports='the value (clipped DV)',
          hyperparameters=(('clip', 5.0),), reference='Song & Ermon 2020'),
    Bound('mine', mine, lower_bound=True, reports='dv(scores) (its value)',
          report=dv, inputs=(STATE,), hyperparameters=(('momentum', 0.99),),
          state_init=mine_init, reference='Belghazi et al. 2018'),
    Bound('jsd', jsd, lower_bound=False, reports='nwj(scores + 1)',
          report=_nwj_of_log_ratio('gan', 'jsd'),
          reference='Hjelm et al. 2019, Eq. 4'),
    *(_f_bound(d) for d in F_DIVERGENCES),
)

REGISTRY: Mapping[str, Bound] = types.MappingProxyType({b.name: b for b in _ENTRIES})


def get(name: str, *, scores_only: bool = False) -> Bound:
  """The registry entry ``name``; an unknown name raises, listing the valid ones.

  Args:
    name: a key of ``REGISTRY``.
    scores_only: require an entry that needs nothing but the scores (no
      baseline, no state); another raises a ValueError listing those that do.
  """
  spec = registry.lookup(REGISTRY, name, 'bound')
  if scores_only and spec.inputs:
    valid = ', '.join(n for n, b in REGISTRY.items() if not b.inputs)
    raise ValueError(f'bound {name!r} needs {", ".join(spec.inputs)} besides the '
                     f'scores; the bounds of the scores alone are: {valid}')
  return spec


__all__ = [
    'BASELINE', 'Bound', 'F_DIVERGENCES', 'MineState', 'REGISTRY', 'STATE', 'Value',
    'as_float', 'check_scores', 'conditional', 'conditional_infonce', 'core',
    'critic_log_ratio', 'demi', 'demi_terms', 'dv', 'exp_saturating',
    'f_divergence', 'f_divergence_scores', 'fgan', 'get', 'infonce',
    'interpolated', 'joint_mean', 'jsd', 'lambertw_exp', 'marginal_logmeanexp',
    'marginal_mean', 'mine', 'mine_init', 'nwj', 'smile', 'streaming', 'tuba',
]
