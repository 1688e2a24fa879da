"""Times InfoNCE + bilinear critic loss-and-gradient at growing batch sizes K.

  python -m benchmarks.bounds_infonce [--sizes=128,512,2048] [--dim=128]

For each K: x, y of shape (K, d), scores = x W y^T (bilinear critic, K x K),
loss = -infonce(scores); the jitted loss and gradient with respect to W (and
the inputs, as an encoder would need) are timed with block_until_ready, median
over repeats after a warm-up. Prints a table with the memory of the K x K
float32 score matrix (the quantity that limits large-batch InfoNCE).
"""

import time
from typing import Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from infomax_jax import bounds
from infomax_jax import critics

_SIZES = flags.DEFINE_list('sizes', ['128', '512', '2048'], 'Batch sizes K.')
_DIM = flags.DEFINE_integer('dim', 128, 'Feature dimension d of x and y.')
_REPEATS = flags.DEFINE_integer('repeats', 20, 'Timed calls per size.')


def time_infonce_bilinear(k: int, dim: int, repeats: int) -> float:
  """Median milliseconds of one jitted loss-and-grad call at batch size k."""
  critic = critics.make_critic('bilinear')
  kx, ky, kp = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (k, dim))
  y = jax.random.normal(ky, (k, dim))
  params = critic.init(kp, x, y)

  @jax.jit
  def loss_and_grad(params, x, y):
    loss = lambda p, x, y: -bounds.infonce(critic.apply(p, x, y))
    return jax.value_and_grad(loss, argnums=(0, 1, 2))(params, x, y)

  jax.block_until_ready(loss_and_grad(params, x, y))   # compile + warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(loss_and_grad(params, x, y))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def main(argv: Sequence[str]) -> None:
  del argv
  device = jax.devices()[0]
  print(f'device: {device.platform} ({device.device_kind}), d = {_DIM.value}, '
        f'median of {_REPEATS.value} calls')
  print('|     K | loss+grad (ms) | K x K scores (float32) |')
  print('|------:|---------------:|-----------------------:|')
  for k in map(int, _SIZES.value):
    ms = time_infonce_bilinear(k, _DIM.value, _REPEATS.value)
    mib = k * k * jnp.dtype(jnp.float32).itemsize / 2**20
    print(f'| {k:5d} | {ms:14.3f} | {mib:18.3f} MiB |', flush=True)


if __name__ == '__main__':
  app.run(main)
