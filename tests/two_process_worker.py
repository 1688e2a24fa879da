"""One process of the two-process test (tests/test_parallel.py starts two).

  XLA_FLAGS=--xla_force_host_platform_device_count=4 python \
      tests/two_process_worker.py --coordinator=127.0.0.1:PORT \
      --num_processes=2 --process_id=I --out=DIR

Each process owns 4 CPU devices of a global 8-device ``'data'`` mesh. Both
draw the same global batch (K = 64 pairs, fixed seed) with numpy, keep only
their own rows (``parallel.process_batch_slice``) and assemble the global
arrays with ``parallel.global_batch`` (``make_array_from_process_local_data``).
Then, across the two processes:

* ``dense``: ``bounds.infonce(x @ y.T)`` under ``jax.jit`` (GSPMD inserts the
  cross-process all-gather), value and gradients;
* ``ring`` / ``all_gather``: the streaming ``streaming.infonce`` under
  ``shard_map`` with blocks of 3, value and gradients;
* ``train``: two steps of ``infomax_jax.train`` (the loop the experiments
  use), whose sampled batches and loss span both processes.

Process I writes ``DIR/result_I.json``; the parent compares them with the same
quantities computed in one process.
"""

import argparse
import functools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from infomax_jax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position

K, DIM, SEED = 64, 4, 0


def global_data() -> tuple[np.ndarray, np.ndarray]:
  """The global batch, identical in every process (and in the parent)."""
  rng = np.random.default_rng(SEED)
  x = rng.standard_normal((K, DIM)).astype(np.float32)
  y = (0.8 * x + 0.6 * rng.standard_normal((K, DIM))).astype(np.float32)
  return x, y


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--coordinator', required=True)
  parser.add_argument('--num_processes', type=int, required=True)
  parser.add_argument('--process_id', type=int, required=True)
  parser.add_argument('--out', required=True)
  args = parser.parse_args()

  assert parallel.initialize_distributed(args.coordinator, args.num_processes,
                                         args.process_id)
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  from infomax_jax import bounds  # pylint: disable=g-import-not-at-top
  from infomax_jax import train  # pylint: disable=g-import-not-at-top
  from infomax_jax.bounds import streaming  # pylint: disable=g-import-not-at-top
  from tests import parallel_fixtures as fx  # pylint: disable=g-import-not-at-top

  mesh = parallel.make_mesh()
  result = {'process_count': jax.process_count(),
            'process_index': jax.process_index(),
            'device_count': jax.device_count(),
            'local_device_count': jax.local_device_count()}
  x, y = global_data()
  rows = parallel.process_batch_slice(K, mesh)
  result['rows'] = [rows.start, rows.stop]
  gx, gy = parallel.global_batch((x[rows], y[rows]), mesh)
  assert gx.shape == (K, DIM) and not gx.is_fully_addressable

  def to_host(tree):     # gathers sharded arrays from both processes
    return jax.tree.map(
        lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True))
        .tolist(), tree)

  dense = jax.jit(jax.value_and_grad(lambda x, y: bounds.infonce(x @ y.T),
                                     argnums=(0, 1)))
  result['dense'] = to_host(dense(gx, gy))
  for collective in streaming.COLLECTIVES:
    fn = parallel.batch_shard_map(functools.partial(
        streaming.infonce, axis_name=parallel.DATA_AXIS,
        collective=collective, block_size=3), mesh)
    result[collective] = to_host(
        jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(gx, gy))

  workdir = os.path.join(args.out, 'train')      # shared by both processes
  state = train.train(fx.train_config(num_steps=2, log_every=1, eval_every=1,
                                      checkpoint_every=2),
                      fx.contrastive_task('ring', mesh), workdir, mesh=mesh,
                      verbose=False)
  # Parameters are replicated: every process holds the whole value.
  result['train_params'] = {k: v.tolist()
                            for k, v in fx.flatten(state.params).items()}
  with open(os.path.join(args.out, f'result_{args.process_id}.json'), 'w') as f:
    json.dump(result, f)
  jax.distributed.shutdown()


if __name__ == '__main__':
  main()
