"""Times one local-DIM InfoNCE training step, JAX vs PyTorch eager, on CPU.

  python -m benchmarks.dim_step [--batch=64] [--units=2048] [--steps=10]

The step (Hjelm et al. 2019, DIM(L) with InfoNCE): 32×32×3 inputs; encoder
conv 64-128-256 (4×4, stride 2, padding 1) with batch norm after the second
and third conv and the FC layer, FC 1024, Y 64; the 8×8×128 map of the second
conv and Y go through encode-and-dot 1×1-conv residual networks of ``units``
units with LayerNorm; scores[i, j, l] = <φ(C_l(x_i)), ψ(Y_j)> / sqrt(units),
(K, K, 64); loss = −(mean over locations of the per-location InfoNCE); one
Adam (lr 1e-4) update. JAX: ``infomax_jax.dim`` under one ``jax.jit``.
PyTorch: the same network written with torch.nn, eager mode (benchmark-only
dependency). Repetitions of the two are interleaved so that both see the
same machine load; prints median and minimum wall ms/step, median process
CPU ms/step and the PyTorch/JAX ratios.
"""

import argparse
import math
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from infomax_jax import dim
from infomax_jax import encoders
from infomax_jax import train

_LEARNING_RATE = 1e-4


def jax_step(batch: int, units: int):
  """A zero-argument function running one jitted DIM(L) InfoNCE step."""
  config = ml_collections.ConfigDict(dict(
      estimator='infonce', alpha=0.0, beta=1.0, gamma=0.0, gradient_penalty=0.0))
  model = dim.DeepInfoMax(encoders.DIMEncoder(), critic_units=units,
                          use_local=True)
  disc = dim.PriorDiscriminator()
  params, stats = dim.init(model, disc, jax.random.PRNGKey(0), (32, 32, 3), 64)
  params = {'model': params['model'], 'disc': {}}   # no prior term
  tx = optax.adam(_LEARNING_RATE)
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                           opt_state=tx.init(params), aux=stats,
                           key=jax.random.PRNGKey(1))
  x = jnp.asarray(np.random.default_rng(0).random((batch, 32, 32, 3), np.float32))
  update = dim.make_update(model, disc, config)
  step = jax.jit(lambda s: update(s, {'x': x}, jax.random.PRNGKey(2), tx),
                 donate_argnums=0)
  holder = [state]

  def run():
    holder[0], metrics = step(holder[0])
    jax.block_until_ready(metrics['loss'])
  return run


def torch_step(batch: int, units: int):
  """A zero-argument function running one eager PyTorch DIM(L) InfoNCE step."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  class Encoder(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv0 = nn.Conv2d(3, 64, 4, 2, 1)
      self.conv1 = nn.Conv2d(64, 128, 4, 2, 1)
      self.bn1 = nn.BatchNorm2d(128, momentum=0.1)
      self.conv2 = nn.Conv2d(128, 256, 4, 2, 1)
      self.bn2 = nn.BatchNorm2d(256, momentum=0.1)
      self.fc = nn.Linear(4096, 1024)
      self.bnf = nn.BatchNorm1d(1024, momentum=0.1)
      self.y = nn.Linear(1024, 64)

    def forward(self, x):
      h = torch.relu(self.conv0(x))
      local = torch.relu(self.bn1(self.conv1(h)))
      h = torch.relu(self.bn2(self.conv2(local)))
      h = torch.relu(self.bnf(self.fc(h.flatten(1))))
      return local, self.y(h)

  class Projection(nn.Module):   # 1×1 conv residual network + LayerNorm
    def __init__(self, c_in):
      super().__init__()
      self.hidden = nn.Linear(c_in, units)
      self.out = nn.Linear(units, units)
      self.shortcut = nn.Linear(c_in, units, bias=False)
      self.norm = nn.LayerNorm(units)

    def forward(self, x):
      return self.norm(self.out(torch.relu(self.hidden(x))) + self.shortcut(x))

  encoder, phi, psi = Encoder(), Projection(128), Projection(64)
  params = [*encoder.parameters(), *phi.parameters(), *psi.parameters()]
  opt = torch.optim.Adam(params, lr=_LEARNING_RATE)
  x = torch.from_numpy(
      np.random.default_rng(0).random((batch, 3, 32, 32), np.float32))
  log_k = math.log(batch)

  def run():
    local, y = encoder(x)
    codes = phi(local.flatten(2).transpose(1, 2))              # (K, L, U)
    scores = torch.einsum('ilu,ju->ijl', codes, psi(y)) / math.sqrt(units)
    diag = torch.diagonal(scores, dim1=0, dim2=1).T             # (K, L)
    infonce = log_k + (diag - torch.logsumexp(scores, dim=1)).mean()
    opt.zero_grad()
    (-infonce).backward()
    opt.step()
  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--units', type=int, default=2048)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  args = parser.parse_args()
  runners = {'jax': jax_step(args.batch, args.units)}
  try:
    runners['torch'] = torch_step(args.batch, args.units)
  except ImportError:
    print('PyTorch is not installed (pip install -e .[bench]); JAX only')
  for run in runners.values():
    for _ in range(args.warmup):
      run()
  wall = {k: [] for k in runners}
  cpu = {k: [] for k in runners}
  for _ in range(args.steps):
    for name, run in runners.items():
      t0, c0 = time.perf_counter(), time.process_time()
      run()
      wall[name].append(1e3 * (time.perf_counter() - t0))
      cpu[name].append(1e3 * (time.process_time() - c0))
  print(f'local DIM InfoNCE step, batch {args.batch}, 32x32x3, 8x8x128 map, '
        f'{args.units}-unit critics, {args.steps} interleaved steps')
  print(f'{"":6} {"median ms":>10} {"min ms":>8} {"CPU ms":>8}')
  for name in runners:
    print(f'{name:6} {np.median(wall[name]):10.1f} {np.min(wall[name]):8.1f} '
          f'{np.median(cpu[name]):8.1f}')
  if 'torch' in runners:
    print(f'PyTorch/JAX: {np.median(wall["torch"]) / np.median(wall["jax"]):.2f}x '
          f'(median wall), {np.min(wall["torch"]) / np.min(wall["jax"]):.2f}x '
          f'(min wall), {np.median(cpu["torch"]) / np.median(cpu["jax"]):.2f}x '
          f'(CPU time)')


if __name__ == '__main__':
  main()
