"""Tests of the generic training loop: exact resume, non-finite stop, config checks."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from infomax_jax import parallel
from infomax_jax import runs
from infomax_jax import train
from tests import fault_worker


def _config(**overrides):
  config = ml_collections.ConfigDict(dict(
      seed=0, num_steps=40, batch_size=8, learning_rate=0.1, log_every=5,
      eval_every=10, checkpoint_every=10))
  config.update(overrides)
  return config


_Interrupt = fault_worker.Interrupt


def _regression_task(interrupt_at=None):
  """Noisy linear regression (``tests/fault_worker.py``); can simulate a kill."""
  return fault_worker.task(interrupt_at=interrupt_at)


def test_resume_is_bit_identical(tmp_path):
  full = train.train(_config(), _regression_task(), str(tmp_path / 'full'),
                     verbose=False)   # Adam: its moments are checked too
  # Killed at the eval of step 30 (after the step-20 checkpoint, before 30's).
  with pytest.raises(_Interrupt):
    train.train(_config(), _regression_task(interrupt_at=30),
                str(tmp_path / 'cut'), verbose=False)
  resumed = train.train(_config(), _regression_task(), str(tmp_path / 'cut'),
                        verbose=False)
  np.testing.assert_array_equal(full.params['w'], resumed.params['w'])
  np.testing.assert_array_equal(full.opt_state[0].mu['w'],
                                resumed.opt_state[0].mu['w'])
  assert int(resumed.step) == 40
  assert (runs.read_metrics(str(tmp_path / 'full'))
          == runs.read_metrics(str(tmp_path / 'cut')))
  # The regression actually converged (the loop trains).
  sgd = train.train(_config(optimizer='sgd'), _regression_task(),
                    str(tmp_path / 'sgd'), verbose=False)
  np.testing.assert_allclose(sgd.params['w'], [1.0, 2.0, 3.0], atol=0.05)


def test_metrics_jsonl_layout(tmp_path):
  train.train(_config(num_steps=20), _regression_task(), str(tmp_path),
              verbose=False)
  records = runs.read_metrics(str(tmp_path))
  assert [r['step'] for r in records if r['split'] == 'train'] == [5, 10, 15, 20]
  assert [r['step'] for r in records if r['split'] == 'eval'] == [0, 10, 20]
  assert all(np.isfinite(r['loss']) for r in records if r['split'] == 'train')
  # The same scalars as TensorBoard events, read back with tensorboard's reader.
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={'scalars': 0})
  acc.Reload()
  for split, name in (('train', 'loss'), ('train', 'mse'), ('eval', 'w_norm')):
    events = [(e.step, e.value) for e in acc.Scalars(f'{split}/{name}')]
    expected = [(r['step'], r[name]) for r in records if r['split'] == split]
    assert [s for s, _ in events] == [s for s, _ in expected]
    np.testing.assert_allclose([v for _, v in events], [v for _, v in expected],
                               rtol=1e-6)
  # One timing record for the run.
  timing = runs.read_timing(str(tmp_path))['train']
  assert timing['steps'] == 20 and timing['segments'] == 1 and timing['seconds'] > 0


def test_non_finite_metric_names_metric_and_step(tmp_path):
  task = _regression_task()
  default_update = train._default_update(task)

  def update(state, batch, key, tx):
    state, metrics = default_update(state, batch, key, tx)
    # The 7th step (state.step == 6 before the increment) yields a NaN.
    metrics['bad'] = jnp.where(state.step == 6, jnp.nan, 0.0)
    return state, metrics

  task = dataclasses.replace(task, update=update)
  with pytest.raises(FloatingPointError, match=r"'bad' became nan at step 7"):
    train.train(_config(), task, str(tmp_path), verbose=False)
  # Everything logged before the failing chunk is on disk.
  assert [r['step'] for r in runs.read_metrics(str(tmp_path))] == [0, 5]


def test_config_checks(tmp_path):
  with pytest.raises(ValueError, match='multiple of config.log_every'):
    train.train(_config(eval_every=7), _regression_task(), str(tmp_path),
                verbose=False)
  with pytest.raises(ValueError, match="needs the field 'seed'"):
    config = _config()
    del config['seed']
    train.train(config, _regression_task(), str(tmp_path), verbose=False)
  with pytest.raises(ValueError, match='unknown optimizer'):
    train.train(_config(optimizer='adamw2'), _regression_task(), str(tmp_path),
                verbose=False)


def test_chunk_compiles_once(tmp_path):
  task = _regression_task()
  tx = train.make_optimizer(_config())
  mesh = parallel.make_mesh()
  state = jax.device_put(train.init_state(task, _config(), tx),
                         parallel.replicated(mesh))
  chunk = train.make_train_chunk(task, tx, mesh, 5)
  data = jax.device_put(task.data, parallel.replicated(mesh))
  for _ in range(3):
    state, _ = chunk(state, data)
  assert chunk._cache_size() == 1
  assert int(state.step) == 15


def test_sample_takes_step_and_early_stop(tmp_path):
  """``sample(data, key, step)``; ``stop`` ends the run, also when resumed."""
  base = _regression_task()

  def sample(data, key, step):
    return {**base.sample(data, key), 'step': step}

  def update(state, batch, key, tx):
    # Trains until the loss first drops below 1, then leaves the state as is.
    def step(_):
      (loss, (metrics, _)), grads = jax.value_and_grad(base.loss, has_aux=True)(
          state.params, state.aux, batch, key)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = jax.tree.map(lambda p, u: p + u, state.params, updates)
      return state.replace(params=params, opt_state=opt_state,
                           aux={'done': loss < 1.0}), loss

    state, loss = jax.lax.cond(state.aux['done'], lambda _: (state, 0.0), step,
                               None)
    return state, {'loss': loss, 'sampled_step': batch['step'] * 1.0}

  task = dataclasses.replace(
      base, init=lambda key: (base.init(key)[0], {'done': jnp.array(False)}),
      sample=sample, update=update, sample_takes_step=True,
      stop=lambda state: bool(state.aux['done']))
  config = _config(num_steps=200, learning_rate=0.05, eval_every=200,
                   checkpoint_every=200)
  state = train.train(config, task, str(tmp_path), verbose=False)
  steps = [r['step'] for r in runs.read_metrics(str(tmp_path), 'train')]
  assert int(state.step) == steps[-1] < 200 and bool(state.aux['done'])
  # Chunk means of the step passed to sample: steps s - 5 .. s - 1.
  assert [r['sampled_step'] for r in runs.read_metrics(
      str(tmp_path), 'train')] == [s - 3.0 for s in steps]
  evals = runs.read_metrics(str(tmp_path), 'eval')
  assert [r['step'] for r in evals] == [0, steps[-1]]
  # The stopped state was checkpointed: a rerun trains no further.
  again = train.train(config, task, str(tmp_path), verbose=False)
  assert int(again.step) == int(state.step)
  np.testing.assert_array_equal(again.params['w'], state.params['w'])
