"""Per-device memory of the sharded InfoNCE loss + gradient on 1, 2, 4, 8 devices.

  python -m benchmarks.large_batch_sharded_memory           # K = 131072, d = 512
  python -m benchmarks.large_batch_sharded_memory --k=65536 --dim=128 --block_size=512

At a fixed global batch K, the loss ``bounds.streaming.infonce`` (symmetric,
streamed over column blocks of ``--block_size``) and its gradient with respect
to both (K, d) embeddings run inside ``jax.shard_map`` over a ``'data'`` mesh
of the first n devices, the batch sharded row-wise (K/n rows per device). Two
collectives for the negatives:

* ring:       y blocks pass around a ring of ``ppermute``; every device holds
              O(K/n d) embeddings and one (K/n, B) score block: memory falls
              with n;
* all_gather: every device gathers all K rows of y: O(K d) per device.

Memory is XLA's account of the compiled SPMD program, per device
(``memory_analysis()``; nothing runs): ``total`` = arguments + outputs +
temporaries - aliased. Without real devices the script forces 8 CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set before JAX
starts). Prints one table.
"""

import json
import os
import sys
from typing import Sequence

if 'jax' not in sys.modules and 'xla_force_host_platform_device_count' not in \
    os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + ' --xla_force_host_platform_device_count=8').strip()

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

_K = flags.DEFINE_integer('k', 131072, 'Global batch size K.')
_DIM = flags.DEFINE_integer('dim', 512, 'Embedding dimension d.')
_BLOCK = flags.DEFINE_integer('block_size', 1024, 'Column block of the streaming loss.')
_DEVICES = flags.DEFINE_list('devices', ['1', '2', '4', '8'], 'Device counts n.')
_COLLECTIVES = flags.DEFINE_list('collectives', ['ring', 'all_gather'], 'Collectives.')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16'],
                            'Embedding dtypes (bfloat16: the embeddings and the '
                            'collectives in bf16, statistics in fp32).')


def per_device_memory(k: int, dim: int, n: int, collective: str, block: int,
                      dtype: str) -> dict:
  """Compiled per-device memory of the sharded loss + gradient on n devices."""
  import functools  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top

  from infomax_jax import parallel  # pylint: disable=g-import-not-at-top
  from infomax_jax.bounds import streaming  # pylint: disable=g-import-not-at-top

  mesh = parallel.make_mesh(jax.devices()[:n])
  loss = parallel.batch_shard_map(functools.partial(
      lambda x, y, **kw: -streaming.infonce(x, y, **kw), symmetric=True,
      block_size=block, axis_name=parallel.DATA_AXIS, collective=collective), mesh)
  spec = jax.ShapeDtypeStruct((k, dim), jnp.dtype(dtype),
                              sharding=NamedSharding(mesh, P(parallel.DATA_AXIS)))
  mem = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(spec, spec) \
      .compile().memory_analysis()
  total = (mem.argument_size_in_bytes + mem.output_size_in_bytes
           + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
  return {'n': n, 'k': k, 'dim': dim, 'collective': collective, 'block_size': block,
          'dtype': dtype, 'args': mem.argument_size_in_bytes,
          'temp': mem.temp_size_in_bytes, 'total': total}


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  import jax  # pylint: disable=g-import-not-at-top
  ns = [int(n) for n in _DEVICES.value if int(n) <= jax.device_count()]
  rows = []
  for dtype in _DTYPES.value:
    for collective in _COLLECTIVES.value:
      for n in ns:
        rows.append(per_device_memory(_K.value, _DIM.value, n, collective,
                                      _BLOCK.value, dtype))
        print(json.dumps(rows[-1]), flush=True)
  print(f'\nSymmetric InfoNCE loss + gradient, global K = {_K.value}, d = {_DIM.value}, '
        f'block {_BLOCK.value}, {jax.devices()[0].platform} devices; per-device '
        'compiled memory (GB = 1e9 bytes, as Inf-CL reports)\n')
  print('| dtype | collective | devices n | rows per device | args (GB) | temp (GB) '
        '| total per device (GB) |')
  print('|---|---|---:|---:|---:|---:|---:|')
  for r in rows:
    print(f"| {r['dtype']} | {r['collective']} | {r['n']} | {r['k'] // r['n']} | "
          f"{r['args'] / 1e9:.3f} | {r['temp'] / 1e9:.3f} | {r['total'] / 1e9:.3f} |")


if __name__ == '__main__':
  app.run(main)
