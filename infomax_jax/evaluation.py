"""Evaluation, written once for every experiment: fixed evaluation keys,
probes on frozen features, and distances between samples.

**Key policy.** Every fixed evaluation batch derives its randomness from the
config seed: ``eval_key(seed, purpose)`` is ``fold_in(PRNGKey(seed),
crc32(purpose) mod 2^31)``, e.g. ``eval_key(config.seed, 'mi_test')``. The same
``purpose`` gives the same batches at every evaluation of a run (curves are
not noisy from resampling), distinct purposes give independent batches, and
no experiment carries a magic seed of its own.

**Probes.** A probe standardises the features (mean and standard deviation fitted on the
train split; constant features are left at zero), fits a softmax classifier on
the train split and reports accuracy on both splits. The whole fit is one
jitted XLA program, compiled once per (shapes, settings) and reused, so calling
it every few thousand training steps costs only the optimisation itself.

* Full batch (``batch_size=None``, default): L-BFGS (``optax.lbfgs`` with its
  zoom line search) inside a ``lax.while_loop``, stopped after ``steps``
  iterations or when the gradient norm falls below ``1e-5``. Deterministic.
* Mini-batch (``batch_size=B``): Adam inside a ``lax.scan``, batches drawn by
  ``data.batch_indices`` from ``fold_in(PRNGKey(seed), step)``; deterministic
  in ``seed``. Use it when the features do not fit in memory twice or for MLP
  probes on large data.

The objective is the mean cross-entropy plus ``l2 / 2 * sum(kernel ** 2)``
(biases are not penalised). scikit-learn's ``LogisticRegression(C=C)`` on N
examples minimises the same objective with ``l2 = 1 / (C * N)``.
"""

import functools
from typing import Any
import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from infomax_jax import data

Array = jax.Array

DEFAULT_L2 = 1e-4
# Features whose std is below this fraction of the mean std are not scaled up.
STD_FLOOR = 1e-3
DEFAULT_STEPS = 100
DEFAULT_ADAM_LEARNING_RATE = 1e-3
# L-BFGS stops early once the gradient norm of the mean loss is this small.
_GRAD_TOLERANCE = 1e-5


class ProbeClassifier(nn.Module):
  """Softmax classifier: linear, or one hidden ReLU layer.

  The linear classifier starts at zero weights (uniform predictions), so its
  full-batch fit does not depend on the seed.

  Attributes:
    num_classes: number of output logits.
    hidden_size: width of the hidden layer; ``None`` for a linear classifier.
  """
  num_classes: int
  hidden_size: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.hidden_size is None:
      return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)(x)
    x = nn.relu(nn.Dense(self.hidden_size)(x))
    return nn.Dense(self.num_classes)(x)


def linear_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    *,
    num_classes: int | None = None,
    l2: float = DEFAULT_L2,
    steps: int = DEFAULT_STEPS,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    warm_start: 'WarmStart | None' = None,
) -> dict[str, float]:
  """Multinomial logistic regression on frozen features.

  Args:
    train_x: (N, D) train features.
    train_y: (N,) integer train labels.
    test_x: (M, D) test features.
    test_y: (M,) integer test labels.
    num_classes: number of classes; ``None`` means ``max label + 1``.
    l2: weight of ``0.5 * ||W||^2`` added to the mean cross-entropy.
    steps: L-BFGS iterations (full batch) or Adam steps (mini-batch).
    learning_rate: Adam step size for mini-batch training (``None`` means
      1e-3). Must be ``None`` for full-batch L-BFGS, whose line search picks
      the steps.
    batch_size: ``None`` for full-batch L-BFGS, else the Adam batch size.
    seed: seeds the initialisation and the mini-batches.
    warm_start: optional ``WarmStart``: the fit starts from the weights it
      holds (if any, of the same shapes) instead of zeros, and stores its
      result there. For repeated probes of slowly changing features (the
      evaluations of one training run), where L-BFGS then reaches its
      tolerance in a fraction of the iterations.

  Returns:
    ``{'accuracy': test accuracy, 'train_accuracy': ..., 'train_loss': final
    regularised train loss, 'steps': iterations run}``.
  """
  return _probe(train_x, train_y, test_x, test_y, hidden_size=None,
                num_classes=num_classes, l2=l2, steps=steps,
                learning_rate=learning_rate, batch_size=batch_size, seed=seed,
                warm_start=warm_start)


class WarmStart:
  """The weights of a probe's last fit, to start the next fit from.

  Weights are in the standardised feature space of their own fit; the next
  fit standardises with its own features' statistics, so a start from slightly
  different features is close, not exact (the fit's tolerance decides the
  result). ``params`` is None until the first fit.
  """

  def __init__(self):
    self.params = None



# linear_probe's keyword options and defaults, shared by mlp_probe.
_PROBE_OPTIONS = {'num_classes': None, 'l2': DEFAULT_L2, 'steps': DEFAULT_STEPS,
                  'learning_rate': None, 'batch_size': None, 'seed': 0,
                  'warm_start': None}


def mlp_probe(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *,
              hidden_size: int = 200, **options: Any) -> dict[str, float]:
  """Classifier with one hidden ReLU layer on frozen features (DIM's probe).

  Hjelm et al. (2019) evaluate with one hidden layer of 200 units.

  Args:
    train_x, train_y, test_x, test_y: as in ``linear_probe``.
    hidden_size: width of the hidden layer.
    **options: ``num_classes``, ``l2`` (on every kernel), ``steps``,
      ``learning_rate``, ``batch_size`` and ``seed``, as in ``linear_probe``.

  Returns:
    ``{'accuracy', 'train_accuracy', 'train_loss', 'steps'}`` as in
    ``linear_probe``.
  """
  if not isinstance(hidden_size, (int, np.integer)) or hidden_size < 1:
    raise ValueError(f'hidden_size must be a positive int, got {hidden_size!r}')
  unknown = sorted(set(options) - set(_PROBE_OPTIONS))
  if unknown:
    raise TypeError(f'mlp_probe got unknown options {unknown}; valid: '
                    f'{", ".join(_PROBE_OPTIONS)}')
  return _probe(train_x, train_y, test_x, test_y, hidden_size=int(hidden_size),
                **{**_PROBE_OPTIONS, **options})


def _check_features(x: Any, name: str) -> jax.Array:
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(f'{name} must have shape (num_examples, num_features), '
                     f'got shape {x.shape}; flatten feature maps first')
  if not (jnp.issubdtype(x.dtype, jnp.floating) or
          jnp.issubdtype(x.dtype, jnp.integer)):
    raise TypeError(f'{name} must be a numeric array, got dtype {x.dtype}')
  x = x.astype(jnp.float32)
  if not bool(jnp.isfinite(x).all()):
    raise ValueError(f'{name} contains NaN or inf values')
  return x


def _check_labels(y: Any, name: str, num_examples: int) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (num_examples,):
    raise ValueError(f'{name} must have shape ({num_examples},) to match the '
                     f'features, got shape {y.shape}')
  if not np.issubdtype(y.dtype, np.integer):
    raise TypeError(f'{name} must hold integer class labels, got dtype '
                    f'{y.dtype}')
  if y.size and y.min() < 0:
    raise ValueError(f'{name} must be >= 0, got a label {y.min()}')
  return y.astype(np.int32)


def _probe(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *,
           hidden_size: int | None, num_classes: int | None, l2: float,
           steps: int, learning_rate: float | None, batch_size: int | None,
           seed: int, warm_start: 'WarmStart | None' = None) -> dict[str, float]:
  """Validates inputs, then fits and evaluates in one jitted call."""
  train_x = _check_features(train_x, 'train_x')
  test_x = _check_features(test_x, 'test_x')
  if train_x.shape[0] == 0 or test_x.shape[0] == 0:
    raise ValueError(f'need at least one train and one test example, got '
                     f'{train_x.shape[0]} and {test_x.shape[0]}')
  if train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f'train_x and test_x must have the same number of '
                     f'features, got {train_x.shape[1]} and {test_x.shape[1]}')
  train_y = _check_labels(train_y, 'train_y', train_x.shape[0])
  test_y = _check_labels(test_y, 'test_y', test_x.shape[0])
  largest = int(max(train_y.max(), test_y.max()))
  if num_classes is None:
    num_classes = max(largest + 1, 2)
  elif not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f'num_classes must be an int >= 2, got {num_classes!r}')
  elif largest >= num_classes:
    raise ValueError(f'labels must be < num_classes={num_classes}, got a '
                     f'label {largest}')
  if not isinstance(steps, (int, np.integer)) or steps < 1:
    raise ValueError(f'steps must be a positive int, got {steps!r}')
  if not l2 >= 0:
    raise ValueError(f'l2 must be >= 0, got {l2!r}')
  if batch_size is None:
    if learning_rate is not None:
      raise ValueError(
          f'learning_rate={learning_rate!r} applies to mini-batch Adam; '
          'full-batch L-BFGS (batch_size=None) picks its steps by line '
          'search, so leave learning_rate=None or set batch_size')
  else:
    if not isinstance(batch_size, (int, np.integer)) or not (
        1 <= batch_size <= train_x.shape[0]):
      raise ValueError(f'batch_size must be an int in [1, {train_x.shape[0]}] '
                       f'(the number of train examples), got {batch_size!r}')
    batch_size = int(batch_size)
    if learning_rate is None:
      learning_rate = DEFAULT_ADAM_LEARNING_RATE
    if not learning_rate > 0:
      raise ValueError(f'learning_rate must be > 0, got {learning_rate!r}')

  if warm_start is not None and not isinstance(warm_start, WarmStart):
    raise TypeError(f'warm_start must be an evaluation.WarmStart or None, got '
                    f'{type(warm_start).__name__}')
  model = ProbeClassifier(num_classes=int(num_classes), hidden_size=hidden_size)
  init = None
  if warm_start is not None and warm_start.params is not None:
    shapes = jax.tree.map(jnp.shape, jax.eval_shape(
        model.init, jax.random.PRNGKey(0), train_x[:1]))
    if jax.tree.map(jnp.shape, warm_start.params) == shapes:
      init = warm_start.params
  results = _fit_and_evaluate(
      model, train_x, jnp.asarray(train_y), test_x, jnp.asarray(test_y),
      jax.random.PRNGKey(seed), jnp.float32(l2),
      None if learning_rate is None else jnp.float32(learning_rate),
      jnp.int32(steps), init, adam_steps=None if batch_size is None else int(steps),
      batch_size=batch_size)
  if warm_start is not None:
    warm_start.params = results.pop('params')
  else:
    results.pop('params')
  results = jax.device_get(results)
  return {'accuracy': float(results['accuracy']),
          'train_accuracy': float(results['train_accuracy']),
          'train_loss': float(results['train_loss']),
          'steps': int(results['steps'])}


def _kernel_sq_norm(params: Any) -> jax.Array:
  """Sum of squared Dense kernels (biases are not regularised)."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return sum(jnp.sum(leaf**2) for path, leaf in leaves
             if getattr(path[-1], 'key', None) == 'kernel')


@functools.partial(jax.jit,
                   static_argnames=('model', 'adam_steps', 'batch_size'))
def _fit_and_evaluate(model: ProbeClassifier, train_x: jax.Array,
                      train_y: jax.Array, test_x: jax.Array, test_y: jax.Array,
                      key: jax.Array, l2: jax.Array,
                      learning_rate: jax.Array | None, steps: jax.Array,
                      init: Any = None, *, adam_steps: int | None,
                      batch_size: int | None) -> dict[str, jax.Array]:
  """Standardises, fits and evaluates; one compiled program per setting.

  L-BFGS's ``steps`` is traced (changing it does not recompile); Adam's scan
  length ``adam_steps`` is static. ``init``: starting weights (None: the
  model's init).
  """
  mean = jnp.mean(train_x, axis=0)
  std = jnp.std(train_x, axis=0)
  # Floor at STD_FLOOR x the mean spread: constant features (blank pixels) map
  # to 0, and numerically dead ones (e.g. blank pixels that a flow at its
  # 1e-4 init perturbs by ~1e-9) are not blown up into unit-variance features.
  floor = STD_FLOOR * jnp.mean(std)
  std = jnp.where(std > floor, std, jnp.where(floor > 0, floor, 1.0))
  train_x = (train_x - mean) / std
  test_x = (test_x - mean) / std
  init_key, batch_key = jax.random.split(key)
  params = model.init(init_key, train_x[:1]) if init is None else init
  # One-hot targets: a dense product is much faster on CPU than the
  # gather/scatter pair of integer-label cross-entropy.
  train_targets = jax.nn.one_hot(train_y, model.num_classes, dtype=jnp.float32)

  def loss_fn(params, x, targets):
    logits = model.apply(params, x)
    cross_entropy = jnp.mean(jax.nn.logsumexp(logits, axis=-1) -
                             jnp.sum(targets * logits, axis=-1))
    return cross_entropy + 0.5 * l2 * _kernel_sq_norm(params)

  if batch_size is None:
    params, loss, num_steps = _lbfgs(
        lambda p: loss_fn(p, train_x, train_targets), params, steps)
  else:
    params, loss, num_steps = _adam(
        loss_fn, params, train_x, train_targets, batch_key, learning_rate,
        adam_steps, batch_size)

  def accuracy(x, y):
    return jnp.mean(jnp.argmax(model.apply(params, x), axis=-1) == y)

  return {'accuracy': accuracy(test_x, test_y),
          'train_accuracy': accuracy(train_x, train_y),
          'train_loss': loss, 'steps': num_steps, 'params': params}


def _lbfgs(loss_fn, params, steps):
  """Full-batch L-BFGS with zoom line search; returns (params, loss, steps)."""
  optimizer = optax.lbfgs()
  # Reuses the value and gradient the line search already computed.
  value_and_grad = optax.value_and_grad_from_state(loss_fn)

  def not_done(carry):
    _, state, step = carry
    grad = optax.tree_utils.tree_get(state, 'grad')
    return (step == 0) | ((step < steps) &
                          (optax.tree_utils.tree_norm(grad) >= _GRAD_TOLERANCE))

  def one_step(carry):
    params, state, step = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = optimizer.update(grad, state, params, value=value,
                                      grad=grad, value_fn=loss_fn)
    return optax.apply_updates(params, updates), state, step + 1

  params, state, num_steps = jax.lax.while_loop(
      not_done, one_step, (params, optimizer.init(params), jnp.int32(0)))
  return params, optax.tree_utils.tree_get(state, 'value'), num_steps


def _adam(loss_fn, params, x, targets, key, learning_rate, steps, batch_size):
  """Mini-batch Adam; returns (params, last batch loss, steps)."""
  optimizer = optax.adam(learning_rate)
  num_examples = x.shape[0]

  def one_step(carry, step):
    params, state = carry
    idx = data.batch_indices(jax.random.fold_in(key, step), num_examples,
                             batch_size)
    loss, grad = jax.value_and_grad(loss_fn)(params, x[idx], targets[idx])
    updates, state = optimizer.update(grad, state, params)
    return (optax.apply_updates(params, updates), state), loss

  (params, _), losses = jax.lax.scan(
      one_step, (params, optimizer.init(params)), jnp.arange(steps))
  return params, losses[-1], jnp.int32(steps)


# ------------------------------------------------------------ feature passes


def map_batches(fn, x: Array, batch_size: int = 500) -> dict[str, Array]:
  """``fn`` (a jitted map from a batch to a dict of per-example arrays) over
  ``x`` in equal batches, the last one zero-padded and the padding dropped.

  A host loop rather than ``lax.map``: XLA:CPU runs convolutions inside a loop
  about 10x slower than at top level, and equal batches compile once.
  """
  n = x.shape[0]
  if n < 1:
    raise ValueError(f'map_batches needs at least one example, got shape {x.shape}')
  batch_size = min(batch_size, n)
  outs = []
  for start in range(0, n, batch_size):
    chunk = x[start:start + batch_size]
    if chunk.shape[0] < batch_size:
      pad = jnp.zeros((batch_size - chunk.shape[0],) + chunk.shape[1:], chunk.dtype)
      chunk = jnp.concatenate([chunk, pad])
    outs.append(fn(chunk))
  return {k: jnp.concatenate([o[k] for o in outs])[:n] for k in outs[0]}


# ----------------------------------------------------------------- key policy


def eval_key(seed: int, purpose: str) -> jax.Array:
  """The fixed key of one purpose: ``fold_in(PRNGKey(seed), crc32(purpose) mod 2^31)``.

  Args:
    seed: the run's config seed.
    purpose: what the key draws, e.g. 'mi_test', 'prior_test', 'c2st'.
  """
  if not isinstance(purpose, str) or not purpose:
    raise ValueError(f'purpose must be a non-empty str, got {purpose!r}')
  return jax.random.fold_in(jax.random.PRNGKey(seed),
                            zlib.crc32(purpose.encode()) & 0x7FFFFFFF)


def eval_keys(seed: int, purpose: str, num: int) -> jax.Array:
  """``num`` fixed keys of ``purpose`` (one per evaluation batch)."""
  if num < 1:
    raise ValueError(f'need at least one evaluation batch, got num={num}')
  return jax.random.split(eval_key(seed, purpose), num)


# ------------------------------------------------------ distances of samples


def wasserstein_to_uniform(v: Array) -> Array:
  """Mean over dimensions of the exact W1 distance of v[:, d] to U[0, 1].

  W1 = ∫_0^1 |F_n^{-1}(u) − u| du, with the empirical quantile function equal
  to the i-th order statistic on [i/n, (i+1)/n); each piece integrates in
  closed form. 0 iff the sample's quantiles match the prior's.

  Args:
    v: (N, D) samples in any range (σ(Y) lies in [0, 1]).
  """
  if v.ndim != 2:
    raise ValueError(f'wasserstein_to_uniform expects (N, D), got {v.shape}')
  n = v.shape[0]
  c = jnp.sort(v, axis=0)
  a = (jnp.arange(n) / n)[:, None]
  b = a + 1.0 / n
  below = ((a + b) / 2 - c) * (b - a)          # c <= a
  above = (c - (a + b) / 2) * (b - a)          # c >= b
  inside = ((c - a) ** 2 + (b - c) ** 2) / 2   # a < c < b
  piece = jnp.where(c <= a, below, jnp.where(c >= b, above, inside))
  return jnp.mean(jnp.sum(piece, axis=0))


def _mean_distance(a: Array, b: Array, exclude_diagonal: bool) -> Array:
  """Mean Euclidean distance over the pairs (a_i, b_j) (i ≠ j if asked).

  Exact differences, row blocks at a time (the |a|² + |b|² − 2ab expansion
  loses ~1e-3 to float32 rounding on near-equal points).
  """
  row = lambda a_i: jnp.sqrt(jnp.sum((a_i - b) ** 2, axis=-1))
  dist = jax.lax.map(row, a, batch_size=min(a.shape[0], 128))
  if exclude_diagonal:
    n = a.shape[0]
    return (jnp.sum(dist) - jnp.sum(jnp.diag(dist))) / (n * (n - 1))
  return jnp.mean(dist)


def energy_distance(x: Array, v: Array) -> Array:
  """Energy distance (Székely & Rizzo 2013) between two samples, unbiased.

  ``2 E||X − V|| − E||X − X'|| − E||V − V'||`` with U-statistics for the
  within-sample terms. The population value is >= 0 and 0 iff the two
  distributions are equal; unlike a classifier's accuracy it does not
  saturate, so it grades how far σ(Y) is from the prior jointly over all
  dimensions (the marginal W1 cannot see dependence between them). In 1-D
  it equals ``2 ∫ (F_X − F_V)² dt``.

  Args:
    x: (N, D) sample, N >= 2.
    v: (M, D) sample, M >= 2.
  """
  if x.ndim != 2 or v.ndim != 2 or x.shape[1] != v.shape[1] or min(
      x.shape[0], v.shape[0]) < 2:
    raise ValueError(f'energy_distance expects (N, D) and (M, D) samples with '
                     f'N, M >= 2, got shapes {x.shape} and {v.shape}')
  return (2.0 * _mean_distance(x, v, False) - _mean_distance(x, x, True)
          - _mean_distance(v, v, True))


def c2st_accuracy(a: Array, b: Array, *, seed: int = 0, hidden_size: int = 200,
                  steps: int = 1500, batch_size: int | None = 256,
                  learning_rate: float = 1e-3,
                  num_fit: int | None = None) -> float:
  """Classifier two-sample test: held-out accuracy of telling ``a`` from ``b``.

  A one-hidden-layer probe (``mlp_probe``) is fitted on the first half of
  each sample (its first ``num_fit`` rows, when given) and scored on the
  rest: 0.5 means indistinguishable, 1 disjoint. With ~10^4 samples a side
  the test is strict (it saturates near 1 for samples that W1 and the energy
  distance still grade).

  Args:
    a, b: (N, D) and (M, D) samples, N, M >= 4.
    seed: the probe's seed (initialisation and mini-batches).
  """
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(
      a.shape[0], b.shape[0]) < 4:
    raise ValueError(f'c2st_accuracy expects (N, D) and (M, D) samples with '
                     f'N, M >= 4, got shapes {a.shape} and {b.shape}')
  na, nb = (a.shape[0] // 2, b.shape[0] // 2) if num_fit is None else (num_fit,) * 2
  labels = lambda n, m: np.concatenate([np.zeros(n, np.int32), np.ones(m, np.int32)])
  result = mlp_probe(
      jnp.concatenate([a[:na], b[:nb]]), labels(na, nb),
      jnp.concatenate([a[na:], b[nb:]]),
      labels(a.shape[0] - na, b.shape[0] - nb),
      hidden_size=hidden_size, steps=steps, batch_size=batch_size,
      learning_rate=learning_rate,
      seed=seed)
  return float(result['accuracy'])


def distances_to_uniform(train: Array, test: Array, *, seed: int,
                         energy_examples: int = 2000,
                         **c2st_kwargs: Any) -> dict[str, float]:
  """How far samples in [0, 1]^d (e.g. σ(Y) of DIM) are from U[0, 1]^d.

  * ``w1_prior``: mean per-dimension W1 of ``test`` to U[0, 1] (exact);
  * ``energy_prior``: energy distance of the first ``energy_examples`` of
    ``test`` to as many uniform samples: joint over the dimensions, and
    graded where the C2ST saturates;
  * ``c2st_accuracy``: a classifier two-sample test (``c2st_accuracy``)
    fitted on ``train`` vs uniform samples, scored on ``test`` vs new ones.

  Uniform samples and the probe derive from ``eval_key(seed, ...)``.
  """
  k_train, k_test, k_energy = jax.random.split(eval_key(seed, 'uniform_prior'), 3)
  prior_train = jax.random.uniform(k_train, train.shape)
  prior_test = jax.random.uniform(k_test, test.shape)
  m = min(energy_examples, test.shape[0])
  c2st = c2st_accuracy(jnp.concatenate([train, test]),
                       jnp.concatenate([prior_train, prior_test]),
                       seed=seed, num_fit=train.shape[0], **c2st_kwargs)
  return {'w1_prior': float(wasserstein_to_uniform(test)),
          'energy_prior': float(energy_distance(
              test[:m], jax.random.uniform(k_energy, (m,) + test.shape[1:]))),
          'c2st_accuracy': c2st}
