"""Times one training step of the invertible-encoder experiment, JAX vs PyTorch.

  python -m benchmarks.realnvp_step [--couplings=30] [--batch=128] [--steps=20]

The step of Tschannen et al. (2020, Fig. 1a): x = top 392 and y = bottom 392
pixels of a 28x28 image; two RealNVP encoders (additive couplings, conditioner
MLP [512, 512]); bilinear critic scores[i, j] = g1(x_i)^T W g2(y_j); loss =
-InfoNCE(scores); one Adam (lr 1e-4) update of both encoders and W.

JAX: the whole step (forward, backward, Adam) is one jitted function, timed
with block_until_ready after a warm-up. PyTorch (optional, benchmark-only
dependency): the same network, same permutations and init, in eager mode on
CPU. Prints the median ms/step over --steps timed steps, steps/s, and the
ratio. Timings depend on machine load; run it twice.
"""

import argparse
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax import flows

_DIM = 392          # one half of a 28x28 MNIST image
_HIDDEN = (512, 512)
_LEARNING_RATE = 1e-4
_INIT_STD = 1e-4    # RealNVP conditioner init, as in flows.RealNVP


def _median_ms(step: Callable[[], None], steps: int,
               warmup: int) -> tuple[float, float]:
  """Median (wall-clock, process CPU) milliseconds of ``step()`` after warm-up.

  CPU time (all threads of this process) is reported beside wall time because
  on a shared machine wall time mostly measures the other processes' load.
  """
  for _ in range(warmup):
    step()
  wall, cpu = [], []
  for _ in range(steps):
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu))


def _fake_halves(batch: int) -> tuple[np.ndarray, np.ndarray]:
  """Uniform [0, 1) "pixels" split into top / bottom halves, (batch, 392)."""
  images = np.random.default_rng(0).random((batch, 2 * _DIM), np.float32)
  return images[:, :_DIM], images[:, _DIM:]


def time_jax(couplings: int, batch: int, steps: int,
             warmup: int) -> tuple[tuple[float, float], float]:
  """Returns ((median wall, CPU) ms per jitted step, compile seconds)."""
  encoder = flows.RealNVP(couplings, hidden=_HIDDEN, coupling='additive',
                          init_std=_INIT_STD)
  critic = critics.make_critic('bilinear')
  x, y = map(jnp.asarray, _fake_halves(batch))
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {
      'g1': encoder.init(k1, x),
      'g2': encoder.init(k2, y),
      'critic': critic.init(k3, x, y),
  }
  optimizer = optax.adam(_LEARNING_RATE)
  opt_state = optimizer.init(params)

  def loss_fn(params, x, y):
    zx = encoder.apply(params['g1'], x)
    zy = encoder.apply(params['g2'], y)
    return -bounds.infonce(critic.apply(params['critic'], zx, zy))

  @jax.jit
  def train_step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  t0 = time.perf_counter()
  compiled = train_step.lower(params, opt_state, x, y).compile()
  compile_s = time.perf_counter() - t0

  state = [params, opt_state]

  def step() -> None:
    state[0], state[1], loss = compiled(state[0], state[1], x, y)
    jax.block_until_ready(loss)

  return _median_ms(step, steps, warmup), compile_s


def time_torch(couplings: int, batch: int, steps: int,
               warmup: int) -> tuple[float, float]:
  """Median (wall, CPU) ms per eager PyTorch step of the same network."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  d1 = _DIM // 2
  d2 = _DIM - d1

  def conditioner() -> nn.Module:
    widths = (d1, *_HIDDEN, d2)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
      linear = nn.Linear(fan_in, fan_out)
      nn.init.normal_(linear.weight, std=_INIT_STD)
      nn.init.zeros_(linear.bias)
      layers.append(linear)
      if i < len(widths) - 2:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)

  class RealNVP(nn.Module):
    """Additive RealNVP with the permutations of flows.RealNVP."""

    def __init__(self) -> None:
      super().__init__()
      perms = flows.coupling_permutations(couplings, _DIM, 0)
      self.register_buffer('perms', torch.as_tensor(perms.astype(np.int64)))
      self.couplings = nn.ModuleList(conditioner() for _ in range(couplings))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
      for perm, net in zip(self.perms, self.couplings):
        x = x.index_select(1, perm)
        x1, x2 = x[:, :d1], x[:, d1:]
        x = torch.cat([x1, x2 + net(x1)], dim=1)
      return x

  g1, g2 = RealNVP(), RealNVP()
  w = nn.Parameter(torch.randn(_DIM, _DIM) / np.sqrt(_DIM))
  optimizer = torch.optim.Adam([*g1.parameters(), *g2.parameters(), w],
                               lr=_LEARNING_RATE)
  x, y = map(torch.from_numpy, _fake_halves(batch))

  def step() -> None:
    optimizer.zero_grad(set_to_none=True)
    scores = g1(x) @ (w @ g2(y).T)
    infonce = np.log(batch) + torch.mean(
        torch.diagonal(scores) - torch.logsumexp(scores, dim=1))
    (-infonce).backward()
    optimizer.step()

  return _median_ms(step, steps, warmup)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--couplings', type=int, default=30,
                      help='coupling layers per encoder')
  parser.add_argument('--batch', type=int, default=128, help='batch size K')
  parser.add_argument('--steps', type=int, default=20,
                      help='timed steps (the median is reported)')
  parser.add_argument('--warmup', type=int, default=3,
                      help='untimed steps before timing')
  parser.add_argument('--torch_threads', type=int, default=0,
                      help='torch.set_num_threads (0: leave the default)')
  args = parser.parse_args(argv)

  device = jax.devices()[0]
  print(f'RealNVP step: 2 encoders x {args.couplings} additive couplings '
        f'{list(_HIDDEN)}, d = {_DIM}, batch {args.batch}, bilinear critic, '
        f'InfoNCE, Adam; median of {args.steps} steps after {args.warmup} '
        f'warm-up')
  print(f'jax {jax.__version__} on {device.platform} ({device.device_kind}); '
        f'{os.cpu_count()} CPUs; load average '
        f'{", ".join(f"{v:.2f}" for v in os.getloadavg())}')

  rows = []
  jax_ms, compile_s = time_jax(args.couplings, args.batch, args.steps,
                               args.warmup)
  rows.append(('JAX (jit)', *jax_ms))
  print(f'JAX compile time: {compile_s:.1f} s')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch = None
    print('PyTorch is not installed: skipping the PyTorch timing '
          '(pip install torch to compare).')
  if torch is not None:
    if args.torch_threads:
      torch.set_num_threads(args.torch_threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    rows.append(('PyTorch (eager, CPU)',
                 *time_torch(args.couplings, args.batch, args.steps,
                             args.warmup)))

  print()
  print('| framework            | ms/step | steps/s | time / JAX time '
        '| CPU ms/step | CPU / JAX CPU |')
  print('|:---------------------|--------:|--------:|----------------:'
        '|------------:|--------------:|')
  for name, ms, cpu_ms in rows:
    print(f'| {name:<20} | {ms:7.1f} | {1e3 / ms:7.2f} | '
          f'{ms / jax_ms[0]:15.2f} | {cpu_ms:11.1f} | '
          f'{cpu_ms / jax_ms[1]:13.2f} |')


if __name__ == '__main__':
  main()
