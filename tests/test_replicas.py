"""Replicas: N seeds trained side by side in one program (``config.num_seeds``)."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from infomax_jax import runs
from infomax_jax import train
from tests import fault_worker


def _task(seed_aware: bool = True, blow_up: bool = False, config_seed: int = 0) -> train.Task:
  """The fault suite's noisy linear regression, whose evaluation draws held-out
  inputs from the seed; optionally an evaluation hook without ``seed=``, or a
  loss that turns NaN once |w[0]| > 50."""
  task = fault_worker.task(config_seed=config_seed)
  evaluate, loss = task.evaluate, task.loss
  if not seed_aware:
    task = dataclasses.replace(task, evaluate=lambda p, a, step: evaluate(p, a, step))
  if blow_up:
    def exploding(params, aux, batch, key):
      value, (metrics, aux) = loss(params, aux, batch, key)
      value = jnp.where(jnp.abs(params['w'][0]) > 50, jnp.nan, value)
      return value, ({**metrics, 'mse': value}, aux)
    task = dataclasses.replace(task, loss=exploding)
  return task


def _config(num_steps=20, **overrides):
  c = ml_collections.ConfigDict(dict(
      seed=0, num_steps=num_steps, batch_size=8, learning_rate=0.05,
      log_every=5, eval_every=10, checkpoint_every=10, keep_checkpoints=3))
  c.update(overrides)
  return c


@pytest.mark.slow
def test_replica_r_equals_the_single_run_of_seed_r(tmp_path):
  batched = _config(num_seeds=3, seed=4)
  state = train.train(batched, _task(), str(tmp_path / 'batched'), verbose=False)
  assert state.params['w'].shape == (3, 3)
  records = runs.read_metrics(str(tmp_path / 'batched'))
  groups = runs.replicas.by_seed(records)
  assert sorted(groups) == ['4', '5', '6']
  singles = {}
  for seed in (4, 5, 6):
    workdir = str(tmp_path / f'seed{seed}')
    one = train.train(_config(seed=seed), _task(config_seed=seed), workdir,
                      verbose=False)
    np.testing.assert_allclose(state.params['w'][seed - 4], one.params['w'], rtol=1e-6)
    singles[seed] = runs.read_metrics(workdir)
    mine = groups[str(seed)]
    assert [(r['step'], r['split']) for r in mine] == [
        (r['step'], r['split']) for r in singles[seed]]
    for a, b in zip(mine, singles[seed]):
      for name in ('mse', 'held_out_mse', 'w0'):
        if name in b:
          np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7)
  # The 'all' records: mean, sample std and the Student-t half-width of the
  # single runs' values, computed here from scratch.
  final = [r for r in records if r.get('seed') == 'all' and r['split'] == 'eval'][-1]
  values = np.array([singles[s][-1]['held_out_mse'] for s in (4, 5, 6)])
  assert final['step'] == 20
  np.testing.assert_allclose(final['held_out_mse'], values.mean(), rtol=1e-5)
  np.testing.assert_allclose(final['held_out_mse_std'], values.std(ddof=1), rtol=1e-4)
  half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
  np.testing.assert_allclose(final['held_out_mse_ci95'], half, rtol=1e-4)


def test_batched_resume_is_bit_identical(tmp_path):
  straight = train.train(_config(20, num_seeds=2), _task(), str(tmp_path / 'a'),
                         verbose=False)
  workdir = str(tmp_path / 'b')
  train.train(_config(10, num_seeds=2), _task(), workdir, verbose=False)
  resumed = train.train(_config(20, num_seeds=2), _task(), workdir, verbose=False)
  for x, y in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  a = runs.read_metrics(str(tmp_path / 'a'))
  b = runs.read_metrics(workdir)
  assert a == b


def test_num_seeds_needs_an_evaluation_that_takes_the_seed(tmp_path):
  with pytest.raises(ValueError, match='seed='):
    train.train(_config(num_seeds=2), _task(seed_aware=False), str(tmp_path),
                verbose=False)


@pytest.mark.parametrize('bad', [0, -1, 1.5, 'two'])
def test_bad_num_seeds_is_named(tmp_path, bad):
  with pytest.raises((ValueError, TypeError), match='num_seeds'):
    train.train(_config(num_seeds=bad), _task(), str(tmp_path), verbose=False)


def test_non_finite_replica_is_named_by_its_seed(tmp_path):
  task = _task(blow_up=True)
  init = task.init

  def init_big_for_seed_1(key):   # the replica of seed 1 starts far away
    params, aux = init(key)
    seed1 = jax.random.split(jax.random.PRNGKey(1))[0]
    big = jnp.all(key == seed1)
    return {'w': jnp.where(big, 100.0, params['w'])}, aux

  task = train.Task(init=init_big_for_seed_1, sample=task.sample, loss=task.loss,
                    data=task.data, evaluate=task.evaluate)
  with pytest.raises(FloatingPointError, match=r"'(loss|mse)' became nan at step 1 \(seed 1\)"):
    train.train(_config(num_seeds=2), task, str(tmp_path), verbose=False)
