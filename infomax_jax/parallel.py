"""Device mesh, shardings, global batches and multi-process start-up.

Training is ``jax.jit`` over a one-axis ``Mesh`` named ``'data'`` that spans
every device of every process (a mesh of one on a single CPU/GPU): parameters
and data sets are replicated, each batch is sharded along its first axis.
Replicas (N seeds vmapped in one program, ``train`` with ``config.num_seeds``)
may instead be spread over the devices: ``make_mesh(replica_devices=R)`` is a
2-D ``('replica', 'data')`` mesh of R groups of n / R devices; each group holds
N / R replicas (state sharded ``P('replica')`` on its leading axis) and splits
their batches over its own devices (``P('replica', 'data')``). With R = n every
device trains its own replicas on its own data, with no cross-device traffic.
Because the whole global batch is one logical array, a contrastive score
matrix computed inside the jitted step uses negatives from every device; XLA
inserts the collectives. Where the K x K scores should not exist at all,
``batch_shard_map`` runs a per-device function (e.g. the streaming, ring or
all-gather bounds of ``infomax_jax.bounds.streaming``) on the local shards.

Multi-process (multi-host) runs: call ``initialize_distributed()`` first
thing; it starts ``jax.distributed`` when the environment asks for several
processes. Every process then runs the same program on the same global mesh.
A batch sampled on device inside the jitted step (``train.Task.sample``) is
already global; a batch read by each host (its own slice, see
``process_batch_slice``) becomes one global array with ``global_batch``
(``jax.make_array_from_process_local_data``).

``jax.pmap`` is not used (it is in maintenance mode; see BUILD_NOTES.md).
"""

import os
from typing import Any, Callable, Optional

import jax
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

DATA_AXIS = 'data'
REPLICA_AXIS = 'replica'

PyTree = Any


def make_mesh(devices=None, replica_devices: int = 1) -> Mesh:
  """A 1-D ``'data'`` mesh over ``devices`` (default: all devices of all hosts).

  Axis types are Auto so that sharding propagates automatically through
  ordinary jnp code (``jax.make_mesh`` defaults to Explicit in recent JAX).

  ``replica_devices = R > 1``: a 2-D ``('replica', 'data')`` mesh of shape
  (R, n / R) instead, for replicas sharded over R groups of devices (see the
  module docstring); R must divide the number n of devices.
  """
  if replica_devices == 1 and not isinstance(replica_devices, bool):
    if devices is None:
      return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                           axis_types=(AxisType.Auto,))
    return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))
  n = jax.device_count() if devices is None else np.asarray(devices).size
  r = replica_devices
  if (isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1
      or n % r):
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    raise ValueError(
        f'replica_devices must be a positive int dividing the number of '
        f'devices ({n}), got replica_devices={r!r}; use one of {divisors}')
  shape, names = (int(r), n // r), (REPLICA_AXIS, DATA_AXIS)
  auto = (AxisType.Auto, AxisType.Auto)
  if devices is None:
    return jax.make_mesh(shape, names, axis_types=auto)
  return Mesh(np.asarray(devices).reshape(shape), names, axis_types=auto)


def replica_axis_size(mesh: Mesh) -> int:
  """The size of ``mesh``'s ``'replica'`` axis: 1 on a 1-D ``'data'`` mesh."""
  return mesh.shape.get(REPLICA_AXIS, 1)


def replica_spmd_axis(mesh: Mesh) -> Optional[str]:
  """``'replica'`` if ``mesh`` has that axis, else None: the ``spmd_axis_name``
  of the ``vmap`` over replicas (its sharding constraints and ``shard_map``s
  then also split the replica axis over the mesh's ``'replica'`` axis)."""
  return REPLICA_AXIS if REPLICA_AXIS in mesh.axis_names else None


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy on every device (parameters, data sets)."""
  return NamedSharding(mesh, P())


def replica_sharded(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Splits array axis ``axis`` (the replica axis of a stacked ``TrainState``,
  of stacked metrics) over the ``'replica'`` mesh axis; on a mesh without one,
  ``replicated(mesh)``."""
  if REPLICA_AXIS not in mesh.axis_names:
    return replicated(mesh)
  return NamedSharding(mesh, P(*(None,) * axis, REPLICA_AXIS))


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (batch) axis over the ``'data'`` axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """Raises ValueError unless ``batch_size`` splits evenly over the mesh."""
  n = mesh.shape[DATA_AXIS]
  if batch_size % n:
    groups = replica_axis_size(mesh)
    where = (f': {mesh.size} devices / replica_devices={groups}'
             if groups > 1 else '')
    raise ValueError(
        f'batch_size must be divisible by the number of devices in the '
        f"'{DATA_AXIS}' mesh axis ({n}{where}), got batch_size={batch_size}; "
        f'use a multiple of {n}')


def shard_batch(batch, mesh: Mesh):
  """Constrains every leaf of a batch pytree to be sharded on its first axis.

  Used inside a jitted step on batches sampled on device; scalars and leaves
  whose leading axis does not divide over the mesh are replicated instead.
  Inside the ``vmap`` over replicas with ``spmd_axis_name='replica'`` (a
  ``('replica', 'data')`` mesh) the stacked batch becomes ``P('replica',
  'data')``.
  """
  n = mesh.shape[DATA_AXIS]

  def constrain(x):
    if getattr(x, 'ndim', 0) == 0 or x.shape[0] % n:
      return jax.lax.with_sharding_constraint(x, replicated(mesh))
    return jax.lax.with_sharding_constraint(x, batch_sharded(mesh))

  return jax.tree.map(constrain, batch)


# ------------------------------------------------------- shard_map bodies --

def batch_shard_map(fn: Callable[..., Any], mesh: Mesh, *,
                    num_batch_args: Optional[int] = None) -> Callable[..., Any]:
  """``fn`` run on every device's shard of the batch, returning a replicated value.

  ``batch_shard_map(fn, mesh)(x, y)`` calls ``fn(x_local, y_local)`` on each
  device with its rows of the batch-sharded arguments (inside, the mesh axis
  is ``DATA_AXIS``: pass ``axis_name=parallel.DATA_AXIS`` to the collectives
  or to ``infomax_jax.bounds.streaming``); ``fn`` must return values that are the
  same on every device (after a ``psum``/``pmean``), e.g. a global bound.
  Gradients flow through it.

  Args:
    fn: per-device function.
    mesh: the ``'data'`` mesh, or a ``('replica', 'data')`` one when ``fn``
      runs inside the train loop's ``vmap`` over sharded replicas (each
      replica's batch is then split over its group's ``'data'`` devices).
    num_batch_args: how many leading positional arguments are batch-sharded;
      the rest are replicated (e.g. parameters). Default: all.

  Returns:
    A function of global arrays (callable inside or outside ``jax.jit``).
  """
  def wrapped(*args):
    n = len(args) if num_batch_args is None else num_batch_args
    specs = tuple(P(DATA_AXIS) if i < n else P() for i in range(len(args)))
    if REPLICA_AXIS not in mesh.axis_names:
      return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P())(*args)
    # Under vmap(spmd_axis_name='replica') JAX 0.10's varying-manual-axes
    # check rejects the streaming bounds' scans and products ("mismatched
    # varying manual axes"); without it the values and gradients are right
    # (tests/test_replica_mesh.py compares them with the 1-D mesh).
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(),
                         check_vma=False)(*args)
  return wrapped


# ---------------------------------------------------------- multi-process --

def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name)
  return int(value) if value not in (None, '') else None


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None,
                           local_device_ids=None) -> bool:
  """Starts ``jax.distributed`` when the environment asks for several processes.

  Call it before any other JAX call. It initialises when

  * the arguments are given, or the variables ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` are set (any launcher), or
  * a SLURM job step has several tasks (``SLURM_NTASKS`` > 1) or an Open MPI
    job several ranks (``OMPI_COMM_WORLD_SIZE`` > 1): JAX reads the rest
    from the cluster's own variables.

  Otherwise (one process, or a Cloud TPU VM, where JAX needs no call for a
  single host) it does nothing. On CPU the collectives between processes use
  gloo. Idempotent.

  Returns:
    Whether this is a multi-process run.
  """
  if jax.distributed.is_initialized():
    return True
  coordinator_address = coordinator_address or os.environ.get(
      'JAX_COORDINATOR_ADDRESS')
  num_processes = num_processes if num_processes is not None else _env_int(
      'JAX_NUM_PROCESSES')
  process_id = process_id if process_id is not None else _env_int('JAX_PROCESS_ID')
  explicit = coordinator_address is not None and num_processes is not None
  cluster = ((_env_int('SLURM_NTASKS') or 1) > 1
             or (_env_int('OMPI_COMM_WORLD_SIZE') or 1) > 1)
  if explicit and num_processes <= 1:
    return False
  if not explicit and not cluster:
    return False
  # Cross-process collectives of the CPU backend need an implementation
  # (accelerators bring theirs, e.g. NCCL); harmless where CPUs are unused.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id,
                             local_device_ids=local_device_ids)
  return True


def process_batch_slice(global_batch_size: int, mesh: Mesh) -> slice:
  """The rows of a global batch that this process feeds (its devices' shards).

  With ``global_batch``, each process reads only ``batch[process_batch_slice(
  ...)]`` of a global batch (e.g. from its own data loader or file shard).
  """
  check_batch_size(global_batch_size, mesh)
  sharding = batch_sharded(mesh)
  indices = sharding.addressable_devices_indices_map((global_batch_size,))
  starts = sorted({idx[0].start or 0 for idx in indices.values()})
  stops = sorted({idx[0].stop if idx[0].stop is not None else global_batch_size
                  for idx in indices.values()})
  start, stop = starts[0], stops[-1]
  if stop - start != len(starts) * (global_batch_size // mesh.shape[DATA_AXIS]):
    raise ValueError('this process\'s devices hold non-contiguous rows of the '
                     'batch; build the mesh with jax.make_mesh (process-major '
                     'device order)')
  return slice(start, stop)


def global_batch(local_batch: PyTree, mesh: Mesh) -> PyTree:
  """Assembles each process's rows into global arrays sharded over ``'data'``.

  Args:
    local_batch: pytree of host arrays holding this process's rows
      (``process_batch_slice``), leading axis = global batch / process count.
    mesh: the global ``'data'`` mesh.

  Returns:
    The same pytree of global ``jax.Array``s (leading axis = global batch).
  """
  sharding = batch_sharded(mesh)

  def assemble(a):
    a = np.asarray(a)
    shape = (a.shape[0] * jax.process_count(), *a.shape[1:])
    return jax.make_array_from_process_local_data(sharding, a, shape)

  return jax.tree.map(assemble, local_batch)
