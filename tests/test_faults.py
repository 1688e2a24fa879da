"""The fault suite: runs that no fault can corrupt (infomax_jax.runs, train).

Kill -9 mid-run, corrupted checkpoints, two processes on one workdir, a
non-finite state at a checkpoint step, a rerun with another config, bad
config values: each ends in the same run or in a clear error, never in a
silently wrong one.
"""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import runs
from infomax_jax import train
from infomax_jax.runs import workdir as workdir_lib
from tests import fault_worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, 'tests', 'fault_worker.py')


def _run(workdir, num_steps=20, **overrides):
  return train.train(fault_worker.config(num_steps, **overrides),
                     fault_worker.task(), str(workdir), verbose=False)


def _spawn(workdir, num_steps, sleep=0.0):
  return subprocess.Popen(
      [sys.executable, WORKER, str(workdir), str(num_steps), str(sleep)],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env={**os.environ, 'PYTHONPATH': ROOT})


def _last_step(workdir) -> int:
  try:
    return max([r['step'] for r in runs.read_metrics(str(workdir))] or [0])
  except (FileNotFoundError, json.JSONDecodeError):
    return 0


# ----------------------------------------------------------------- the lock


def _hold_lock(workdir) -> subprocess.Popen:
  """Another process holding ``workdir``'s lock for a minute."""
  return subprocess.Popen(
      [sys.executable, '-c',
       'import sys, time; from infomax_jax.runs import workdir as w\n'
       'with w.lock(sys.argv[1]):\n  print("locked", flush=True); time.sleep(60)',
       str(workdir)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
      env={**os.environ, 'PYTHONPATH': ROOT})


@pytest.mark.slow
def test_second_process_is_refused_and_a_dead_holders_lock_is_taken(tmp_path, capsys):
  holder = _hold_lock(tmp_path)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    with pytest.raises(workdir_lib.WorkdirLocked, match=f'pid {holder.pid}'):
      with workdir_lib.lock(str(tmp_path)):
        pass
    with pytest.raises(workdir_lib.WorkdirLocked):   # train.train asks too
      _run(tmp_path)
    assert not (tmp_path / 'metrics.jsonl').exists()
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The kernel released the dead holder's lock: it is taken over, and said so.
  with workdir_lib.lock(str(tmp_path)):
    with workdir_lib.lock(str(tmp_path)):   # re-entrant in one process
      pass
  assert f'stale lock of pid {holder.pid}' in capsys.readouterr().out


@pytest.mark.slow
def test_entry_point_refuses_a_locked_workdir_in_one_line(tmp_path):
  holder = _hold_lock(tmp_path)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    out = subprocess.run(
        [sys.executable, '-m', 'experiments.noniid',
         '--config=experiments/configs/noniid.py:tiny', f'--workdir={tmp_path}'],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
  finally:
    holder.kill()
    holder.wait()
  assert out.returncode == 1
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr
  assert lines[0].startswith(f'FATAL: {tmp_path} is in use by another run (pid {holder.pid} ')
  assert lines[0].endswith('wait for it to end or choose another --workdir')


@pytest.mark.slow
def test_two_concurrent_runs_one_refused_no_duplicate_records(tmp_path):
  first, second = _spawn(tmp_path, 30, 2.0), None
  try:
    while _last_step(tmp_path) < 5:
      time.sleep(0.1)
    second = _spawn(tmp_path, 30)
    out = second.communicate(timeout=120)[0]
    assert second.returncode != 0 and 'is in use by another run' in out
    assert first.wait(timeout=240) == 0
  finally:
    for p in (first, second):
      if p is not None and p.poll() is None:
        p.kill()
  steps = [(r['split'], r['step']) for r in runs.read_metrics(str(tmp_path))]
  assert len(steps) == len(set(steps))
  assert steps.count(('eval', 30)) == 1


# ------------------------------------------------------------ kill -9, resume


@pytest.mark.slow
def test_kill_9_at_random_steps_ends_bitwise_identical(tmp_path):
  reference = _spawn(tmp_path / 'ref', 60)
  assert reference.wait(timeout=300) == 0, reference.stdout.read()
  rng = random.Random(0)
  workdir = tmp_path / 'killed'
  for kill_after in sorted(rng.sample(range(5, 56), 3)):
    proc = _spawn(workdir, 60, 0.15)
    while _last_step(workdir) < kill_after and proc.poll() is None:
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  proc = _spawn(workdir, 60)
  assert proc.wait(timeout=300) == 0, proc.stdout.read()
  np.testing.assert_array_equal(np.load(workdir / 'final.npy'),
                                np.load(tmp_path / 'ref' / 'final.npy'))
  assert (runs.read_metrics(str(workdir))
          == runs.read_metrics(str(tmp_path / 'ref')))


# ------------------------------------------------------- corrupt checkpoints


def _files(step_dir):
  return sorted(os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs)


def _truncate(step_dir):
  data = [f for f in _files(step_dir) if os.path.getsize(f) > 64]
  target = max(data, key=os.path.getsize)
  with open(target, 'r+b') as f:
    f.truncate(os.path.getsize(target) // 2)


def _garble_metadata(step_dir):
  for f in _files(step_dir):
    if 'metadata' in os.path.basename(f).lower():
      with open(f, 'w') as fh:
        fh.write('{"not": json')


def _random_bytes(step_dir):
  """4 KB of random bytes over the start of the largest data file."""
  target = max(_files(step_dir), key=os.path.getsize)
  size = os.path.getsize(target)
  with open(target, 'r+b') as f:
    f.write(np.random.default_rng(0).bytes(min(4096, size)))


@pytest.mark.slow
@pytest.mark.parametrize('corrupt', [_truncate, _garble_metadata, _random_bytes])
def test_corrupt_latest_checkpoint_falls_back(tmp_path, capsys, corrupt):
  reference = _run(tmp_path / 'ref', 30)
  _run(tmp_path / 'run', 20)                       # checkpoints at 15 and 20
  corrupt(str(tmp_path / 'run' / 'checkpoints' / '20'))
  resumed = _run(tmp_path / 'run', 30)
  out = capsys.readouterr().out
  assert 'the checkpoint at step 20' in out and 'unusable' in out
  assert out.count('warning:') == 1
  np.testing.assert_array_equal(resumed.params['w'], reference.params['w'])
  assert (tmp_path / 'run' / 'corrupt_checkpoints' / '20').is_dir()
  assert (runs.read_metrics(str(tmp_path / 'run'))
          == runs.read_metrics(str(tmp_path / 'ref')))


@pytest.mark.slow
def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
  _run(tmp_path, 20)
  for step in ('15', '20'):
    _truncate(str(tmp_path / 'checkpoints' / step))
  with pytest.raises(RuntimeError, match=r'no usable checkpoint in .*step 20: .*'
                     r'step 15: .*start the run again'):
    _run(tmp_path, 30)


# --------------------------------------------------- non-finite state, config


def test_non_finite_state_is_never_saved(tmp_path):
  task = fault_worker.task()
  default = train._default_update(task)

  def update(state, batch, key, tx):   # params turn NaN at step 13, metrics stay finite
    state, metrics = default(state, batch, key, tx)
    bad = jnp.where(state.step == 12, jnp.nan, 1.0)
    return state.replace(params={'w': state.params['w'] * bad}), {'loss': jnp.zeros(())}

  task = dataclasses.replace(task, update=update, evaluate=None)
  with pytest.raises(FloatingPointError,
                     match=r"state at step 15 holds non-finite values .*\['w'\].*"
                           r'last good checkpoint \(step 10\) is kept'):
    train.train(fault_worker.config(30), task, str(tmp_path), verbose=False)
  ckpt = runs.Checkpoints(str(tmp_path))
  assert ckpt.latest_step() == 10
  ckpt.close()


@pytest.mark.slow
def test_rerun_with_another_config_is_refused(tmp_path):
  _run(tmp_path, 20)
  with pytest.raises(workdir_lib.ConfigMismatch,
                     match=r'learning_rate: 0\.05 -> 0\.2\n  seed: 0 -> 1'):
    _run(tmp_path, 20, learning_rate=0.2, seed=1)
  # Extending the run (num_steps) is allowed; so is an explicitly allowed field.
  assert int(_run(tmp_path, 25).step) == 25
  workdir_lib.allow_changes(['learning_rate'])
  try:
    assert int(_run(tmp_path, 30, learning_rate=0.01).step) == 30
  finally:
    workdir_lib._allowed.clear()
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['learning_rate'] == 0.01
  # The entry point asks the same question before loading any data.
  workdir_lib.check_config(str(tmp_path), fault_worker.config(30, learning_rate=0.01))
  with pytest.raises(workdir_lib.ConfigMismatch, match='seed: 0 -> 2'):
    workdir_lib.check_config(str(tmp_path), fault_worker.config(30, seed=2,
                                                                 learning_rate=0.01))


@pytest.mark.parametrize('field, value, message', [
    ('batch_size', 0, 'batch_size must be >= 1, got 0'),
    ('batch_size', -3, 'batch_size must be >= 1, got -3'),
    ('learning_rate', float('nan'), 'learning_rate must be a finite number > 0'),
    ('learning_rate', -1.0, 'learning_rate must be a finite number > 0'),
    ('log_every', 0, 'log_every must be >= 1, got 0'),
    ('num_steps', 2.5, 'num_steps must be an integer, got 2.5'),
    ('eval_every', 7, r'eval_every \(7\) must be a multiple of config.log_every'),
    ('bound', 'nce', "unknown bound 'nce'; valid bounds are: .*infonce"),
    ('critic', 'mlp', "unknown critic 'mlp'; valid critics are: .*bilinear"),
    ('optimizer', 'adamw2', "unknown optimizer 'adamw2'; valid optimizers are: adam, sgd"),
])
def test_bad_config_value_is_named(field, value, message):
  import ml_collections

  from experiments.configs import invertible
  config = ml_collections.ConfigDict(
      {**invertible.get_config('tiny').to_dict(), field: value})
  with pytest.raises(ValueError, match=message):
    runs.validate(config)


@pytest.mark.slow
def test_bad_config_is_reported_before_any_data_is_loaded(tmp_path):
  # The data folder does not exist: a run that got as far as loading would
  # fail with FileNotFoundError instead.
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.invertible',
       '--config=experiments/configs/invertible.py:tiny',
       '--config.learning_rate=nan', '--config.batch_size=0',
       f'--config.data_dir={tmp_path / "nowhere"}', f'--workdir={tmp_path / "w"}'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert 'learning_rate must be a finite number > 0' in out.stderr
  assert 'batch_size must be >= 1' in out.stderr
  assert 'FileNotFoundError' not in out.stderr and 'Traceback' not in out.stderr
  unknown = subprocess.run(
      [sys.executable, '-m', 'experiments.invertible',
       '--config=experiments/configs/invertible.py:tiny', '--config.nope=1'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert unknown.returncode == 2
  assert unknown.stderr.strip().splitlines() == [
      "FATAL: bad flag (the config has no field 'nope') in: "
      '--config=experiments/configs/invertible.py:tiny --config.nope=1']
