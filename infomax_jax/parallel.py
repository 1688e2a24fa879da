"""Device mesh and shardings for data-parallel training.

Training is ``jax.jit`` over a one-axis ``Mesh`` named ``'data'`` that spans
every device (a mesh of one on a single CPU/GPU): parameters and data sets are
replicated, each batch is sharded along its first axis. Because the whole
global batch is one logical array, a contrastive score matrix computed inside
the jitted step uses negatives from every device; XLA inserts the collectives.
``jax.pmap`` is not used (it is in maintenance mode; see BUILD_NOTES.md).
"""

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D ``'data'`` mesh over ``devices`` (default: all devices of all hosts).

  Axis types are Auto so that sharding propagates automatically through
  ordinary jnp code (``jax.make_mesh`` defaults to Explicit in recent JAX).
  """
  if devices is None:
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                         axis_types=(AxisType.Auto,))
  import numpy as np
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
