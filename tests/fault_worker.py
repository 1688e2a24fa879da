"""A small training run for the fault tests, as its own process.

  python tests/fault_worker.py WORKDIR NUM_STEPS [SLEEP_PER_CHUNK]

Noisy linear regression through ``train.train`` with a checkpoint every 5
steps; writes the final parameters to WORKDIR/final.npy. The optional sleep
(in the evaluation hook, every 5 steps) slows it down so a test can kill it
mid-run.
"""

import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from infomax_jax import evaluation
from infomax_jax import train


class Interrupt(Exception):
  """Raised by the evaluation hook at ``interrupt_at``: a simulated kill."""


def task(sleep: float = 0.0, interrupt_at=None, config_seed: int = 0) -> train.Task:
  """Noisy linear regression y = x . (1, 2, 3); evaluates ||w||, w[0] and the
  error on held-out inputs drawn from the seed (``seed=``, as for a replica of a
  batched run; by default ``config_seed``, as the library's tasks do)."""
  w_true = jnp.arange(1.0, 4.0)
  xs = jax.random.normal(jax.random.PRNGKey(1), (256, 3))

  def init(key):
    return {'w': 0.1 * jax.random.normal(key, (3,))}, ()

  def sample(data, key):
    idx = jax.random.choice(key, data['x'].shape[0], (8,), replace=False)
    return jax.tree.map(lambda a: a[idx], data)

  def loss(params, aux, batch, key):
    err = batch['x'] @ params['w'] - batch['y'] + 0.01 * jax.random.normal(
        key, batch['y'].shape)
    mse = jnp.mean(err ** 2)
    return mse, ({'mse': mse}, aux)

  def evaluate(params, aux, step, seed=None):
    if step == interrupt_at:
      raise Interrupt()
    time.sleep(sleep)
    held_out = jax.random.normal(evaluation.eval_key(
        config_seed if seed is None else seed, 'held_out'), (64, 3))
    return {'w_norm': float(jnp.linalg.norm(params['w'])), 'w0': float(params['w'][0]),
            'held_out_mse': float(jnp.mean((held_out @ (params['w'] - w_true)) ** 2))}

  return train.Task(init=init, sample=sample, loss=loss,
                    data={'x': xs, 'y': xs @ w_true}, evaluate=evaluate)


def config(num_steps: int, **overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(dict(
      seed=0, num_steps=num_steps, batch_size=8, learning_rate=0.05,
      log_every=5, eval_every=5, checkpoint_every=5, keep_checkpoints=2))
  c.update(overrides)
  return c


if __name__ == '__main__':
  workdir, num_steps = sys.argv[1], int(sys.argv[2])
  sleep = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
  state = train.train(config(num_steps), task(sleep), workdir, verbose=False)
  np.save(f'{workdir}/final.npy', np.asarray(state.params['w']))
