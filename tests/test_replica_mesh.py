"""Replicas sharded over devices: ``config.replica_devices`` (issue 17).

The single-device tests (validation) run here. The 8-device checks need the
XLA flag before JAX starts, so this file is also their script, run in a
subprocess by the tests below (as tests/multidevice_checks.py is for
tests/test_parallel.py):

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
      python tests/test_replica_mesh.py --workdir=/tmp/rm

Each check prints one JSON line ``{"check": name, "ok": bool, "detail": ...}``.
"""

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import jax
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from infomax_jax import parallel  # pylint: disable=wrong-import-position
from infomax_jax import runs  # pylint: disable=wrong-import-position
from infomax_jax import train  # pylint: disable=wrong-import-position
from tests import fault_worker  # pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = 4


def _config(num_steps=10, **overrides):
  """fault_worker's linear regression, 4 seeds, batch 8 (1 row per device at
  replica_devices=1, 4 at replica_devices=4)."""
  return fault_worker.config(num_steps, **{
      'num_seeds': SEEDS, 'checkpoint_every': 5, 'keep_checkpoints': 3,
      **overrides})


# ------------------------------------------------------- 1 device (here) --

@pytest.mark.parametrize('bad', [0, -2, 1.5, 'two', True])
def test_bad_replica_devices_is_named(tmp_path, bad):
  with pytest.raises(ValueError, match=r'config\.replica_devices must be a positive int'):
    train.train(_config(replica_devices=bad), fault_worker.task(), str(tmp_path),
                verbose=False)


def test_replica_devices_must_divide_num_seeds(tmp_path):
  with pytest.raises(ValueError, match=r'replica_devices=3 must divide config\.num_seeds=4'):
    train.train(_config(replica_devices=3), fault_worker.task(), str(tmp_path),
                verbose=False)


def test_replica_devices_must_divide_the_devices(tmp_path):
  assert jax.device_count() == 1
  with pytest.raises(ValueError, match=r'dividing the number of devices \(1\), '
                     r'got replica_devices=2; use one of \[1\]'):
    train.train(_config(replica_devices=2), fault_worker.task(), str(tmp_path),
                verbose=False)


def test_replica_devices_1_is_the_1d_data_mesh():
  mesh = parallel.make_mesh(replica_devices=1)
  assert mesh == parallel.make_mesh() and mesh.axis_names == (parallel.DATA_AXIS,)
  assert parallel.replica_axis_size(mesh) == 1
  assert parallel.replica_spmd_axis(mesh) is None
  assert parallel.replica_sharded(mesh) == parallel.replicated(mesh)
  assert train.replica_devices(_config()) == 1


# ---------------------------------------- 8 devices (subprocess, below) --

CHECKS = ('sharded_equals_unsharded', 'no_collectives_at_one_group_per_device',
          'contrastive_global_batch', 'resume_across_replica_devices',
          'errors_on_8_devices')


def _assert_close(a, b, what, rtol=1e-5, atol=1e-6):
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0],
                          jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                               err_msg=f'{what} at {jax.tree_util.keystr(path)}')


def _assert_same_records(a, b, what, rtol=1e-5, atol=1e-6):
  """Every record (per seed and the 'all' summaries) of two runs' metrics."""
  assert [(r['step'], r['split'], r.get('seed')) for r in a] == [
      (r['step'], r['split'], r.get('seed')) for r in b], what
  for x, y in zip(a, b):
    for name, value in y.items():
      if isinstance(value, float):
        np.testing.assert_allclose(x[name], value, rtol=rtol, atol=atol,
                                   err_msg=f'{what}: {name} at {y}')


def _assert_sharded(state, groups):
  """Every state leaf is split over the 'replica' axis: N / R replicas each."""
  for leaf in jax.tree.leaves(state):
    spec = leaf.sharding.spec
    if groups == 1:
      assert spec == P(), spec
    else:
      assert spec == P(parallel.REPLICA_AXIS), spec
    shapes = {s.data.shape for s in leaf.addressable_shards}
    assert shapes == {(SEEDS // groups, *leaf.shape[1:])}, (shapes, leaf.shape)
    rows = {s.index[0].start or 0 for s in leaf.addressable_shards}
    assert len(rows) == groups, rows


def worker(workdir: str) -> None:
  from tests import multidevice_checks as md  # pylint: disable=g-import-not-at-top
  from tests import parallel_fixtures as fx  # pylint: disable=g-import-not-at-top
  assert jax.device_count() == 8, jax.device_count()
  jax.config.update('jax_compilation_cache_dir', os.path.join(workdir, 'jax_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  task = fault_worker.task()

  def run(name, num_steps=10, **overrides):
    path = os.path.join(workdir, name)
    state = train.train(_config(num_steps, **overrides), task, path, verbose=False)
    return state, runs.read_metrics(path)

  @md.check
  def sharded_equals_unsharded():
    """num_seeds=4: replica_devices 2, 4 (and 4 with the python step loop)
    == replica_devices 1, every metric per seed and the parameters."""
    base, base_metrics = run('r1')
    _assert_sharded(base, 1)
    assert len(runs.replicas.by_seed(base_metrics)) == SEEDS
    for groups, loop in ((2, 'scan'), (4, 'scan'), (4, 'python')):
      state, metrics = run(f'r{groups}_{loop}', replica_devices=groups,
                           step_loop=loop)
      _assert_sharded(state, groups)
      _assert_close(state, base, f'state, replica_devices={groups} ({loop})')
      _assert_same_records(metrics, base_metrics,
                           f'metrics, replica_devices={groups} ({loop})')
    final = [r for r in base_metrics if r['split'] == 'eval' and r.get('seed') == 'all']
    return f"held_out_mse at step 10 (mean of 4 seeds): {final[-1]['held_out_mse']:.5f}"

  @md.check
  def no_collectives_at_one_group_per_device():
    """replica_devices = 8 devices = num_seeds: the step has no collective."""
    config = _config(num_seeds=8, replica_devices=8)
    mesh = parallel.make_mesh(replica_devices=8)
    tx = train.make_optimizer(config)
    state = jax.device_put(train.init_state(task, config, tx),
                           parallel.replica_sharded(mesh))
    data = jax.device_put(task.data, parallel.replicated(mesh))
    chunk = train.make_train_chunk(task, tx, mesh, 5, replicas=True)
    found = set(re.findall(r'all-reduce|all-gather|collective-permute|all-to-all|'
                           r'reduce-scatter', chunk.lower(state, data).compile().as_text()))
    assert not found, found
    base = jax.device_put(train.init_state(task, config, tx),
                          parallel.replicated(parallel.make_mesh()))
    base_chunk = train.make_train_chunk(task, tx, parallel.make_mesh(), 5,
                                        replicas=True)
    _assert_close(chunk(state, data), base_chunk(base, jax.device_put(
        task.data, parallel.replicated(parallel.make_mesh()))), 'R=8 vs R=1')
    return 'no all-reduce/all-gather/collective-permute/all-to-all/reduce-scatter'

  @md.check
  def contrastive_global_batch():
    """InfoNCE over the global batch of each replica: dense scores and the
    ring (batch_shard_map under the replica vmap) at replica_devices=2 ==
    dense at 1 (batch 64 split over 4 instead of 8 devices)."""
    out = {}
    for name, groups in (('dense', 1), ('dense', 2), ('ring', 2)):
      mesh = parallel.make_mesh(replica_devices=groups)
      path = os.path.join(workdir, f'contrastive_{name}_{groups}')
      config = fx.train_config(num_seeds=SEEDS, replica_devices=groups)
      state = train.train(config, fx.contrastive_task(name, mesh), path,
                          mesh=mesh, verbose=False)
      _assert_sharded(state, groups)
      out[name, groups] = (state, runs.read_metrics(path))
    for key in (('dense', 2), ('ring', 2)):
      _assert_close(out[key][0], out['dense', 1][0], f'{key} state')
      _assert_same_records(out[key][1], out['dense', 1][1], f'{key} metrics')
    last = [r for r in out['dense', 2][1] if r.get('seed') == 'all'][-1]
    return f"infonce at step {last['step']} (mean of 4 seeds): {last['infonce']:.5f}"

  @md.check
  def resume_across_replica_devices():
    """Checkpoints at step 5 resumed under another replica_devices (2 -> 4,
    4 -> 1, 1 -> 2) == the uninterrupted run at 1."""
    straight, straight_metrics = run('straight')
    for first, then in ((2, 4), (4, 1), (1, 2)):
      name = f'cut_{first}_{then}'
      run(name, 5, replica_devices=first)
      with contextlib.redirect_stdout(io.StringIO()) as out:
        state = train.train(_config(10, replica_devices=then), task,
                            os.path.join(workdir, name))
      assert 'resumed from the checkpoint at step 5' in out.getvalue(), out.getvalue()
      metrics = runs.read_metrics(os.path.join(workdir, name))
      _assert_sharded(state, then)
      _assert_close(state, straight, f'{first} -> {then}')
      _assert_same_records(metrics, straight_metrics, f'{first} -> {then}')
    return '2 -> 4, 4 -> 1, 1 -> 2'

  @md.check
  def errors_on_8_devices():
    cases = [
        (dict(num_seeds=3, replica_devices=3),
         r'dividing the number of devices \(8\), got replica_devices=3; use one of \[1, 2, 4, 8\]'),
        (dict(replica_devices=8), r'replica_devices=8 must divide config\.num_seeds=4'),
        (dict(replica_devices=2, batch_size=6),
         r"divisible by the number of devices in the 'data' mesh axis \(4: 8 devices "
         r'/ replica_devices=2\), got batch_size=6'),
    ]
    shown = []
    for overrides, pattern in cases:
      with pytest.raises(ValueError, match=pattern) as e:
        run('bad', **overrides)
      shown.append(str(e.value))
    with pytest.raises(ValueError, match=r"needs a mesh with a 'replica' axis of that size"):
      train.train(_config(replica_devices=2), task, os.path.join(workdir, 'bad'),
                  mesh=parallel.make_mesh(), verbose=False)
    return ' | '.join(shown)

  failed = [r['check'] for r in md.RESULTS if not r['ok']]
  print(json.dumps({'summary': True, 'failed': failed}), flush=True)
  sys.exit(1 if failed else 0)


@pytest.fixture(scope='module')
def eight_devices(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('replica_mesh')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8 '
             '--xla_backend_optimization_level=0')
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
  proc = subprocess.run([sys.executable, 'tests/test_replica_mesh.py',
                         f'--workdir={workdir}'], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
  results = {}
  for line in proc.stdout.splitlines():
    if line.startswith('{'):
      record = json.loads(line)
      if 'check' in record:
        results[record['check']] = record
  return proc, results


@pytest.mark.slow
@pytest.mark.parametrize('name', CHECKS)
def test_on_8_devices(eight_devices, name):
  proc, results = eight_devices
  if name not in results:
    pytest.fail(f'check {name!r} did not report; exit status {proc.returncode}\n'
                f'--- stdout ---\n{proc.stdout[-5000:]}\n--- stderr ---\n'
                f'{proc.stderr[-5000:]}')
  assert results[name]['ok'], results[name]['detail']


if __name__ == '__main__':
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', required=True)
  worker(parser.parse_args().workdir)
