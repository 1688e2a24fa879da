"""A generic, config-driven training loop with checkpoints and exact resume.

An experiment describes itself as a ``Task`` (how to initialise parameters, how
to sample a batch on device, the loss, an optional evaluation hook) and calls
``train(config, task, workdir)``. The loop:

* runs on a ``'data'`` device mesh from the start (a mesh of one on a single
  device): parameters and data sets are replicated, every sampled batch is
  sharded over the batch axis, so contrastive scores use the global batch;
* advances ``config.log_every`` steps per call of one jitted ``lax.scan`` (no
  host round-trip inside a step; one compilation for the whole run);
* derives every step's randomness from ``fold_in(key, step)``, so a resumed run
  is the same run;
* writes metrics through ``runs.MetricWriter`` (``metrics.jsonl`` + TensorBoard
  events), prints progress with steps/s and ETA, adds its wall time to
  ``timing.json``, stops with a message naming the metric and step when a
  value turns non-finite;
* checkpoints with orbax every ``config.checkpoint_every`` steps and resumes
  automatically from the latest checkpoint in ``workdir``;
* optionally stops early: ``Task.stop`` is asked after every chunk (and after a
  resume) whether training is over, e.g. when the loss stopped improving (the
  steps of the last chunk after the stopping point must then be no-ops of the
  task's ``update``); a final checkpoint is written where it stopped.

``compile_seconds()`` reports the time this process spent compiling, so that
callers can split a ``train`` call's wall time into compilation and steps.

**Replicas.** ``config.num_seeds = N > 1`` trains N independent runs in one
program: every leaf of the ``TrainState`` gains a leading replica axis, the
step is ``vmap``ped over it, and replica ``r`` is the run with seed
``config.seed + r`` (its init, its training keys and, through
``Task.evaluate(..., seed=...)``, its evaluation batches), so it equals the
single run of that seed to float tolerance. Every replica is evaluated; its
records carry the tag ``seed`` (``runs.read_metrics(workdir, 'eval',
seed='3')``) and each evaluation adds a ``seed='all'`` record with the mean,
``{name}_std`` and ``{name}_ci95`` (half-width of a Student-t 95 % interval)
over the replicas (``runs.replicas`` reads them back). Checkpoints hold the
stacked state; resume is as for one run.

By default every device holds every replica and the batches are split over
all devices. ``config.replica_devices = R > 1`` shards the replicas instead:
a ``('replica', 'data')`` mesh of R groups of n / R devices
(``parallel.make_mesh(replica_devices=R)``), each training N / R replicas
(state ``P('replica')`` on the leading axis) on batches split over its own
devices (``P('replica', 'data')``); R = n: every device trains its own
replicas with no cross-device traffic. R must divide n and N. The results
equal R = 1 to float tolerance; checkpoints hold the full stacked state, so a
run may resume under another R (the field is not pinned).

Config fields read here: seed, num_steps, batch_size, learning_rate, log_every,
eval_every, checkpoint_every, and optionally num_seeds (default 1),
replica_devices (default 1), step_loop ('scan', 'python'; see
``make_train_chunk``), optimizer ('adam', 'sgd') and keep_checkpoints.
"""

import contextlib
import dataclasses
import inspect
import os
import time
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from infomax_jax import parallel
from infomax_jax import registry
from infomax_jax import runs

PyTree = Any
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes; a plain pytree (checkpointed whole).

  Attributes:
    step: number of completed optimisation steps.
    params: trained parameters.
    opt_state: optimiser state.
    aux: non-trained state carried across steps (e.g. a MINE moving average,
      batch-norm statistics); ``()`` when unused.
    key: base PRNG key; step ``s`` uses ``fold_in(key, s)``.
  """
  step: jax.Array
  params: PyTree
  opt_state: PyTree
  aux: PyTree
  key: jax.Array


@dataclasses.dataclass(frozen=True)
class Task:
  """What an experiment supplies to ``train``.

  Attributes:
    init: ``key -> (params, aux)``.
    sample: ``(data, key) -> batch``: draws a global batch on device (jitted
      inside the step; the loop shards it over the mesh). With
      ``sample_takes_step`` it is called as ``sample(data, key, step)``.
    loss: ``(params, aux, batch, key) -> (loss, (metrics, new_aux))``; the loss
      is minimised, ``metrics`` is a flat dict of scalars.
    data: device-resident arrays (pytree) passed to ``sample``; replicated.
    evaluate: optional host-side hook ``(params, aux, step) -> dict`` of
      scalars, called at step 0, every ``eval_every`` steps and at the end.
      With ``config.num_seeds > 1`` it is called once per replica with the
      keyword ``seed=`` (that replica's seed, for its evaluation keys), so it
      must accept that keyword.
    optimizer: optional optax transformation (default from the config).
    update: optional replacement of the default gradient step:
      ``(state, batch, key, tx) -> (state_without_step_increment, metrics)``;
      for alternating/adversarial schemes, or steps that read ``state.step``.
    sample_takes_step: pass the step (an int32 scalar, traced) to ``sample``
      as a third argument: for schedules over the steps, e.g. epochs of
      shuffling without replacement or a staircase of data settings.
    stop: optional host-side predicate ``state -> bool`` asked after every
      chunk of ``log_every`` steps and after a resume; True ends training
      there (evaluated and checkpointed), before ``num_steps``. The task's
      ``update`` must itself leave the state unchanged once the condition
      holds (the rest of that chunk still runs).
  """
  init: Callable[[jax.Array], tuple[PyTree, PyTree]]
  sample: Callable[[PyTree, jax.Array], PyTree]
  loss: Optional[Callable[..., Any]] = None
  data: PyTree = ()
  evaluate: Optional[Callable[[PyTree, PyTree, int], dict[str, float]]] = None
  optimizer: Optional[optax.GradientTransformation] = None
  update: Optional[Callable[..., Any]] = None
  sample_takes_step: bool = False
  stop: Optional[Callable[[TrainState], Any]] = None


OPTIMIZERS = {'adam': optax.adam, 'sgd': optax.sgd}


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimizer named ``config.optimizer`` (default 'adam') at ``config.learning_rate``."""
  name = config.get('optimizer', 'adam')
  return registry.lookup(OPTIMIZERS, name, 'optimizer')(config.learning_rate)


def _check_config(config: ml_collections.ConfigDict) -> None:
  for field in ('seed', 'num_steps', 'batch_size', 'log_every', 'eval_every',
                'checkpoint_every'):
    if field not in config:
      raise ValueError(f'config needs the field {field!r} (got fields '
                       f'{sorted(config.keys())})')
  runs.validate(config)


def _default_update(task: Task):
  def update(state: TrainState, batch, key, tx):
    grad_fn = jax.value_and_grad(task.loss, has_aux=True)
    (loss, (metrics, aux)), grads = grad_fn(state.params, state.aux, batch, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss, **metrics}
    return state.replace(params=params, opt_state=opt_state, aux=aux), metrics
  return update


STEP_LOOPS = ('scan', 'python')


def make_train_chunk(task: Task, tx: optax.GradientTransformation, mesh,
                     num_steps: int, step_loop: str = 'scan', replicas: bool = False):
  """A function advancing a ``TrainState`` by ``num_steps`` steps.

  ``replicas``: the state is stacked over a leading replica axis (see
  ``init_state``); every step is ``vmap``ped over it and the metrics are
  stacked as (steps, replicas). On a ``('replica', 'data')`` mesh
  (``parallel.make_mesh(replica_devices=R)``) the state and the metrics are
  sharded over that axis (``parallel.replica_sharded``) and every batch is
  ``P('replica', 'data')``.

  ``step_loop='scan'``: one jitted ``lax.scan`` over the steps (one dispatch
  per chunk). ``'python'``: a host loop dispatching one jitted step at a time;
  dispatch is asynchronous and the metrics stay on device, so there is no
  host round-trip either. XLA:CPU runs convolutions inside a while loop (the
  scan) ~10x slower than at top level (measured on the DIM encoder: 7-10 s
  per step in a scan, 0.5-0.9 s dispatched step by step), so conv nets on CPU
  want 'python'.

  Returns ``(state, metrics)`` with every metric stacked over the steps.
  """
  registry.lookup({k: k for k in STEP_LOOPS}, step_loop, 'step loop')
  update = task.update or _default_update(task)

  def body(state: TrainState, data):
    key = jax.random.fold_in(state.key, state.step)
    sample_key, step_key = jax.random.split(key)
    if task.sample_takes_step:
      batch = task.sample(data, sample_key, state.step)
    else:
      batch = task.sample(data, sample_key)
    batch = parallel.shard_batch(batch, mesh)
    state, metrics = update(state, batch, step_key, tx)
    return state.replace(step=state.step + 1), metrics

  if replicas:
    body = jax.vmap(body, in_axes=(0, None),
                    spmd_axis_name=parallel.replica_spmd_axis(mesh))

  def chunk(state: TrainState, data):
    return jax.lax.scan(lambda s, _: body(s, data), state, None,
                        length=num_steps)

  rep = parallel.replicated(mesh)
  # Without a 'replica' mesh axis (or replicas) every sharding here is `rep`.
  state_sharding = parallel.replica_sharded(mesh) if replicas else rep
  jit = lambda f, metrics: jax.jit(
      f, in_shardings=(state_sharding, rep),
      out_shardings=(state_sharding, metrics), donate_argnums=0)
  if step_loop == 'scan':   # metrics (steps, replicas)
    return jit(chunk, parallel.replica_sharded(mesh, 1) if replicas else rep)
  step = jit(body, state_sharding)

  def python_chunk(state: TrainState, data):
    stacked = []
    for _ in range(num_steps):
      state, metrics = step(state, data)
      stacked.append(metrics)
    return state, jax.tree.map(lambda *m: jnp.stack(m), *stacked)

  return python_chunk


def init_state(task: Task, config, tx: optax.GradientTransformation) -> TrainState:
  """The step-0 state: ``task.init`` under ``split(PRNGKey(seed))[0]``.

  With ``config.num_seeds = N > 1``: the N states of seeds ``config.seed + r``
  stacked on a leading replica axis (``vmap`` of the same construction).
  """
  def one(seed):
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    params, aux = task.init(init_key)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=tx.init(params), aux=aux, key=train_key)
  n = num_replicas(config)
  if n == 1:
    return one(config.seed)
  return jax.vmap(one)(config.seed + jnp.arange(n, dtype=jnp.uint32))


def num_replicas(config) -> int:
  """``config.num_seeds`` (default 1): the runs trained side by side."""
  n = config.get('num_seeds', 1)
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
    raise ValueError(f'config.num_seeds must be a positive int, got {n!r}')
  return int(n)


def replica_devices(config) -> int:
  """``config.replica_devices`` (default 1): over how many device groups the
  replicas are sharded; it must divide ``num_replicas(config)``."""
  r, n = config.get('replica_devices', 1), num_replicas(config)
  if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
    raise ValueError(f'config.replica_devices must be a positive int, got {r!r}')
  if n % r:
    raise ValueError(
        f'config.replica_devices={r} must divide config.num_seeds={n} (each '
        f'of the {r} device groups trains num_seeds / replica_devices replicas)')
  return int(r)


def replica(tree: PyTree, r: int) -> PyTree:
  """Replica ``r`` of a stacked pytree (e.g. a ``TrainState`` of a batched run)."""
  return jax.tree.map(lambda x: x[r], tree)


def replica_seeds(config) -> list[int]:
  """The seed of every replica: ``config.seed + r``."""
  return [int(config.seed) + r for r in range(num_replicas(config))]


# Events whose durations add up to the time spent compiling (tracing, lowering
# to MLIR, XLA compilation).
_COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration',
                   '/jax/core/compile/jaxpr_to_mlir_module_duration',
                   '/jax/core/compile/backend_compile_duration')
_compile_total = None   # [seconds] once the listener is registered


def _record_compile(event: str, seconds: float, **kwargs) -> None:
  del kwargs
  if event in _COMPILE_EVENTS:
    _compile_total[0] += seconds


def compile_seconds() -> float:
  """Seconds this process has spent compiling JAX programs so far.

  Counted from the first call (which starts listening to JAX's compilation
  events), so call it once before the work to be timed: the compilation time
  of a ``train`` call is the difference of two calls around it.
  """
  global _compile_total
  if _compile_total is None:
    _compile_total = [0.0]
    jax.monitoring.register_event_duration_secs_listener(_record_compile)
  return _compile_total[0]


def train(config: ml_collections.ConfigDict, task: Task, workdir: str, *,
          mesh=None, verbose: bool = True) -> TrainState:
  """Trains ``task`` as configured, resuming from ``workdir`` if it holds a checkpoint.

  Args:
    config: see the module docstring for the fields read.
    task: the experiment's ``Task``.
    workdir: output folder (metrics.jsonl, checkpoints/).
    mesh: device mesh (default: all devices, ``parallel.make_mesh(
      replica_devices=config.replica_devices)``); a mesh passed must have a
      ``'replica'`` axis of size ``config.replica_devices`` (none when 1).
    verbose: print progress lines.

  Returns:
    The final ``TrainState`` (replicated over the mesh; sharded over its
    ``'replica'`` axis with ``config.replica_devices > 1``).
  """
  _check_config(config)
  groups = replica_devices(config)
  mesh = mesh or parallel.make_mesh(replica_devices=groups)
  if parallel.replica_axis_size(mesh) != groups:
    raise ValueError(
        f'config.replica_devices={groups} needs a mesh with a '
        f"'{parallel.REPLICA_AXIS}' axis of that size, got a mesh of shape "
        f'{dict(mesh.shape)}; build it with parallel.make_mesh(devices, '
        f'replica_devices={groups})')
  parallel.check_batch_size(config.batch_size, mesh)
  os.makedirs(workdir, exist_ok=True)
  # Multi-process runs: every process trains, process 0 alone logs and writes
  # (and holds the workdir's lock).
  primary = jax.process_index() == 0
  with runs.workdir.lock(workdir) if primary else contextlib.nullcontext():
    return _train(config, task, workdir, mesh, primary, verbose)


def _train(config, task: Task, workdir: str, mesh, primary: bool,
           verbose: bool) -> TrainState:
  log = print if verbose and primary else (lambda *a, **k: None)
  rep = parallel.replicated(mesh)
  seeds = replica_seeds(config)
  batched = len(seeds) > 1
  if batched and task.evaluate is not None and not _takes_seed(task.evaluate):
    raise ValueError(
        f'config.num_seeds={len(seeds)} needs a task whose evaluate hook accepts '
        'the keyword seed= (each replica evaluates on the batches of its own '
        'seed); this task\'s evaluate does not: train one seed per run')

  # The stacked state is split over the 'replica' mesh axis, if any.
  sharded = batched and parallel.replica_axis_size(mesh) > 1
  state_sharding = parallel.replica_sharded(mesh) if sharded else rep

  tx = task.optimizer or make_optimizer(config)
  state = jax.device_put(init_state(task, config, tx), state_sharding)
  data = jax.device_put(task.data, rep)

  ckpt = runs.Checkpoints(workdir, config.get('keep_checkpoints', 2), primary)
  if primary:   # a rerun must be the same run (or an allowed extension of it)
    runs.workdir.pin_config(workdir, config,
                            resuming=ckpt.latest_step() is not None)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=state_sharding),
      state)
  # Warnings print even when progress lines do not (verbose=False).
  resume_step, restored = ckpt.restore(
      abstract, log=print if primary else (lambda *a, **k: None))
  if resume_step is not None:
    state = restored
    log(f'resumed from the checkpoint at step {resume_step} in {workdir}')
  writer = runs.MetricWriter(workdir, resume_step, enabled=primary)

  def write(step, split, per_replica: list[dict]) -> dict:
    """Writes one record per replica (tagged with its seed when batched) and,
    when batched, their mean/std/ci95; returns what the progress line shows."""
    if not batched:
      return writer.write(step, split, per_replica[0])
    for seed, record in zip(seeds, per_replica):
      writer.write(step, split, record, seed=str(seed))
    return writer.write(step, split, runs.replicas.stats(per_replica), seed='all')

  def evaluate(step):
    if task.evaluate is None:
      return
    t0 = time.time()
    records = []
    for r, seed in enumerate(seeds):
      if batched:
        params, aux = replica(state.params, r), replica(state.aux, r)
        if sharded:   # placed as with replica_devices = 1
          params, aux = jax.device_put((params, aux), rep)
        record = task.evaluate(params, aux, step, seed=seed)
      else:
        record = task.evaluate(state.params, state.aux, step)
      record = runs.to_python(record)
      where = f'in the evaluation at step {step}' + (f' (seed {seed})' if batched else '')
      runs.check_finite(record, where)
      records.append(record)
    shown = write(step, 'eval', records)
    shown = ' '.join(f'{k}={v:.4g}' for k, v in shown.items()
                     if isinstance(v, float) and not k.endswith(('_std', '_ci95')))
    mean = ' (mean over seeds)' if batched else ''
    log(f'[eval] step {step}: {shown}{mean} ({time.time() - t0:.1f}s)', flush=True)

  def save(step):
    ckpt.save(step, state)

  def stopped():
    if task.stop is None:
      return False
    if not batched:
      return bool(task.stop(state))
    return all(bool(task.stop(replica(state, r))) for r in range(len(seeds)))

  step = int(state.step if not batched else state.step[0])
  t_start, step_start, compile_start = time.time(), step, compile_seconds()
  if step == 0:
    evaluate(0)
  chunk = make_train_chunk(task, tx, mesh, config.log_every,
                           config.get('step_loop', 'scan'), replicas=batched)
  progress = runs.Progress(config.num_steps, step)
  if step < config.num_steps and stopped():
    log(f'stopped early at step {step} (restored); nothing to train')
  while step < config.num_steps and not stopped():
    state, metrics = chunk(state, data)
    metrics = jax.device_get(metrics)   # (steps,) or (steps, replicas) each
    for name, values in metrics.items():
      bad = np.argwhere(~np.isfinite(values))
      if bad.size:
        where = f' (seed {seeds[bad[0][1]]})' if batched else ''
        raise FloatingPointError(
            f'metric {name!r} became {values[tuple(bad[0])]} at step '
            f'{step + bad[0][0] + 1}{where} (training); stopping')
    step += config.log_every
    per_replica = [{k: float(np.mean(v[:, r] if batched else v))
                    for k, v in metrics.items()} for r in range(len(seeds))]
    record = write(step, 'train', per_replica)
    log(progress.line(step, {k: v for k, v in record.items()
                             if k not in ('step', 'split', 'seed')
                             and not k.endswith(('_std', '_ci95'))}), flush=True)
    last = step == config.num_steps or stopped()
    if last and step < config.num_steps:
      log(f'stopped early at step {step}', flush=True)
    if step % config.eval_every == 0 or last:
      evaluate(step)
    if step % config.checkpoint_every == 0 or last:
      save(step)
  ckpt.close()
  writer.close()
  if primary and step > step_start:
    runs.add_time(workdir, time.time() - t_start, steps=step - step_start,
                  compile_seconds=compile_seconds() - compile_start,
                  reset=step_start == 0)
  return state


def _takes_seed(fn: Callable) -> bool:
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return 'seed' in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
