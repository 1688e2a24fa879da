"""Device mesh, shardings, global batches and multi-process start-up.

Training is ``jax.jit`` over a one-axis ``Mesh`` named ``'data'`` that spans
every device of every process (a mesh of one on a single CPU/GPU): parameters
and data sets are replicated, each batch is sharded along its first axis.
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

PyTree = Any


def make_mesh(devices=None) -> Mesh:
  """A 1-D ``'data'`` mesh over ``devices`` (default: all devices of all hosts).

  Axis types are Auto so that sharding propagates automatically through
  ordinary jnp code (``jax.make_mesh`` defaults to Explicit in recent JAX).
  """
  if devices is None:
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                         axis_types=(AxisType.Auto,))
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy on every device (parameters, data sets)."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (batch) axis over the ``'data'`` axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """Raises ValueError unless ``batch_size`` splits evenly over the mesh."""
  n = mesh.shape[DATA_AXIS]
  if batch_size % n:
    raise ValueError(
        f'batch_size must be divisible by the number of devices in the '
        f"'{DATA_AXIS}' mesh axis ({n}), got batch_size={batch_size}; use a "
        f'multiple of {n}')


def shard_batch(batch, mesh: Mesh):
  """Constrains every leaf of a batch pytree to be sharded on its first axis.

  Used inside a jitted step on batches sampled on device; scalars and leaves
  whose leading axis does not divide over the mesh are replicated instead.
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
    mesh: the ``'data'`` mesh.
    num_batch_args: how many leading positional arguments are batch-sharded;
      the rest are replicated (e.g. parameters). Default: all.

  Returns:
    A function of global arrays (callable inside or outside ``jax.jit``).
  """
  def wrapped(*args):
    n = len(args) if num_batch_args is None else num_batch_args
    specs = tuple(P(DATA_AXIS) if i < n else P() for i in range(len(args)))
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P())(*args)
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
