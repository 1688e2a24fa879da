"""Replica throughput: N seeds vmapped in one program vs N separate processes.

  INFOMAX_DATA_DIR=../shared/data python -m benchmarks.replicas [--replicas=1,2,4,8] \
      [--couplings=8] [--steps=30] [--sharded_devices=8]

The step is the invertible experiment's (Tschannen et al. Fig. 1a/b: two RealNVP
encoders, bilinear critic, InfoNCE, Adam) through ``train.make_train_chunk``,
exactly as ``config.num_seeds = N`` runs it. For each N it prints
replica-steps/s of (a) one process training N vmapped replicas and (b) N
processes, each training one seed, started together (each times its own
steady state after compiling; the sum of their rates is the throughput), and
the ratio (a)/(b). Everything is measured in one run, so the ratio holds even
when the machine's speed drifts; quote the load average beside it.

Column (c), replica-sharded: the N vmapped replicas with
``config.replica_devices = N`` (a ``('replica', 'data')`` mesh, one replica per
device group: every device trains its own replica with no cross-device
traffic), in a process with ``--sharded_devices`` devices (default 8). On a
CPU these are fake devices (``--xla_force_host_platform_device_count``) sharing
the host's cores, so (c) only shows that the layout runs there; its speed
means something on real accelerators (``--sharded_devices=0``: this process's
devices, as (a) uses them).
"""

import argparse
import os
import subprocess
import sys
import time

import jax
import numpy as np

from experiments.configs import invertible as invertible_config
from infomax_jax import parallel
from infomax_jax import train
from infomax_jax import tschannen
from infomax_jax import twoview


def replica_steps_per_second(num_seeds: int, couplings: int, steps: int,
                             replica_devices: int = 1) -> float:
  """Replica-steps/s of one process training ``num_seeds`` vmapped replicas
  (sharded over ``replica_devices`` device groups)."""
  config = invertible_config.get_config('quick')
  config.encoder_kwargs.num_couplings = couplings
  config.train_examples = 2000
  config.num_seeds = num_seeds
  config.replica_devices = replica_devices
  train_views, test_views = tschannen.load_views(config)
  task = twoview.make_task(config, train_views, test_views)
  tx = train.make_optimizer(config)
  mesh = parallel.make_mesh(replica_devices=train.replica_devices(config))
  # Placed as train.train places them: no transfer per call.
  rep = parallel.replicated(mesh)
  state_sharding = parallel.replica_sharded(mesh) if num_seeds > 1 else rep
  state = jax.device_put(train.init_state(task, config, tx), state_sharding)
  data = jax.device_put(task.data, rep)
  chunk = train.make_train_chunk(task, tx, mesh, steps, replicas=num_seeds > 1)
  times = []
  for _ in range(4):   # the first call compiles; the median of the other three
    t0 = time.perf_counter()
    state, _ = chunk(state, data)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
  return num_seeds * steps / float(np.median(times[1:]))


def separate_processes(n: int, couplings: int, steps: int) -> float:
  """Summed replica-steps/s of ``n`` one-seed processes run together."""
  cmd = [sys.executable, '-m', 'benchmarks.replicas', '--worker',
         f'--couplings={couplings}', f'--steps={steps}']
  procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
  rates = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
  return float(sum(rates))


def sharded(n: int, couplings: int, steps: int, devices: int) -> float:
  """Replica-steps/s of ``n`` replicas with replica_devices = n, in a process
  with ``devices`` (fake, on CPU) devices; in this process if ``devices`` is 0."""
  if not devices:
    return replica_steps_per_second(n, couplings, steps, replica_devices=n)
  env = dict(os.environ)
  env['XLA_FLAGS'] = (f"{env.get('XLA_FLAGS', '')} "
                      f'--xla_force_host_platform_device_count={devices}').strip()
  cmd = [sys.executable, '-m', 'benchmarks.replicas', f'--sharded_worker={n}',
         f'--couplings={couplings}', f'--steps={steps}']
  out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=True)
  return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--replicas', default='1,2,4,8')
  parser.add_argument('--couplings', type=int, default=8)
  parser.add_argument('--steps', type=int, default=30)
  parser.add_argument('--sharded_devices', type=int, default=8,
                      help='devices of the replica-sharded column (fake on CPU); '
                      "0: this process's devices")
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--sharded_worker', type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(replica_steps_per_second(1, args.couplings, args.steps), flush=True)
    return
  if args.sharded_worker:
    n = args.sharded_worker
    print(replica_steps_per_second(n, args.couplings, args.steps,
                                   replica_devices=n), flush=True)
    return
  print(f'load average {os.getloadavg()[0]:.2f}; {jax.device_count()} device(s) '
        f'{jax.devices()[0].platform}; RealNVP {args.couplings} couplings, '
        f'batch 128, {args.steps} steps per timing', flush=True)
  where = (f'{args.sharded_devices} devices' if args.sharded_devices else
           f'{jax.device_count()} device(s)')
  print('| N | vmapped replica-steps/s | N processes replica-steps/s | '
        'vmapped / processes | vmapped vs N=1 | replica-sharded (replica_devices=N, '
        f'{where}) replica-steps/s |')
  print('|---|---|---|---|---|---|')
  base = None
  for n in (int(v) for v in args.replicas.split(',')):
    vmapped = replica_steps_per_second(n, args.couplings, args.steps)
    base = base or vmapped
    procs = separate_processes(n, args.couplings, args.steps)
    shard = sharded(n, args.couplings, args.steps, args.sharded_devices)
    print(f'| {n} | {vmapped:.1f} | {procs:.1f} | {vmapped / procs:.2f} | '
          f'{vmapped / base:.2f} | {shard:.1f} |', flush=True)
  print(f'load average {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
  main()
