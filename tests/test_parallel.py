"""Tests of infomax_jax.parallel, infomax_jax.bounds.streaming and infomax_jax.contrastive.

Single-device tests run here. The 8-device checks (tests/multidevice_checks.py)
and the two-process run (tests/two_process_worker.py) need XLA flags set before
JAX starts, so they run in subprocesses started by the tests below; a failing
subprocess fails its test with the subprocess's output.
"""

import functools
import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infomax_jax import bounds
from infomax_jax import contrastive
from infomax_jax import parallel
from infomax_jax import runs
from infomax_jax import train
from infomax_jax.bounds import streaming
from tests import parallel_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Compile faster (these programs are tiny); numerics are unaffected at the
# tolerances used.
FAST_XLA = '--xla_backend_optimization_level=0'


def _jit(fn):
  """``jax.jit(fn)`` compiled without LLVM's expensive passes (tiny programs:
  compilation, not running, is the cost of these tests)."""
  def call(*args):
    compiled = jax.jit(fn).lower(*args).compile(
        compiler_options={'xla_backend_optimization_level': 0})
    return compiled(*args)
  return call


def _assert_close(a, b, what, rtol=2e-5, atol=2e-6):
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0],
                          jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                               err_msg=f'{what} at {jax.tree_util.keystr(path)}')


class _Job:
  """Subprocesses started now and awaited later, so that they run while the
  single-device tests of this module do (the subprocesses wait on each other
  and on I/O at times; two cores get used). Their output goes to files, not
  pipes, so that nothing blocks while nobody reads."""

  def __init__(self, cmds, xla_flags: str, log_dir):
    env = dict(os.environ, XLA_FLAGS=f'{xla_flags} {FAST_XLA}')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    self.logs = [(log_dir / f'stdout_{i}.txt', log_dir / f'stderr_{i}.txt')
                 for i in range(len(cmds))]
    self.procs = []
    for cmd, (out, err) in zip(cmds, self.logs):
      with open(out, 'w') as fout, open(err, 'w') as ferr:
        self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fout,
                                           stderr=ferr, text=True))
    self.outputs = None

  def wait(self, timeout: float = 600):
    """[(returncode, stdout, stderr)] of every process (killed on timeout)."""
    if self.outputs is None:
      try:
        for p in self.procs:
          p.wait(timeout=timeout)
      finally:
        self.kill()
      self.outputs = [(p.returncode, out.read_text(), err.read_text())
                      for p, (out, err) in zip(self.procs, self.logs)]
    return self.outputs

  def kill(self):
    for p in self.procs:
      if p.poll() is None:
        p.kill()
        p.wait()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module', autouse=True)
def _start_jobs_early(request):
  """Starts the subprocesses before this module's first test if a selected
  test needs them (not when ``-k`` picked single-device tests only)."""
  if any('jobs' in item.fixturenames for item in request.session.items
         if item.module is request.module):
    request.getfixturevalue('jobs')


@pytest.fixture(scope='module')
def jobs(tmp_path_factory):
  """The 8-device checks and the two-process run, started in the background."""
  md_dir = tmp_path_factory.mktemp('multidevice')
  tp_dir = tmp_path_factory.mktemp('two_process')
  port = _free_port()
  started = {
      'multidevice': (md_dir, _Job(
          [[sys.executable, 'tests/multidevice_checks.py', f'--workdir={md_dir}']],
          '--xla_force_host_platform_device_count=8', md_dir)),
      'two_process': (tp_dir, _Job(
          [[sys.executable, 'tests/two_process_worker.py',
            f'--coordinator=127.0.0.1:{port}', '--num_processes=2',
            f'--process_id={i}', f'--out={tp_dir}'] for i in range(2)],
          '--xla_force_host_platform_device_count=4', tp_dir)),
  }
  yield started
  for _, job in started.values():
    job.kill()


def _show(outputs) -> str:
  return '\n'.join(
      f'--- process {i}: exit status {rc} ---\n--- stdout ---\n{out[-5000:]}'
      f'\n--- stderr ---\n{err[-5000:]}'
      for i, (rc, out, err) in enumerate(outputs))


# ------------------------------------------- streaming == dense (1 device) --

def _dense_refs(x, y):
  s = x @ y.T
  return {
      'infonce': bounds.infonce(s),
      'symmetric': 0.5 * (bounds.infonce(s) + bounds.infonce(s.T)),
      'dv': bounds.dv(s),
      'nwj': bounds.nwj(s),
      'jsd': bounds.jsd(s),
  }


def _contrastive_all(x, y, block_size):
  return {
      'infonce': streaming.infonce(x, y, block_size=block_size),
      'symmetric': streaming.infonce(x, y, symmetric=True,
                                       block_size=block_size),
      'dv': streaming.dv(x, y, block_size=block_size),
      'nwj': streaming.nwj(x, y, block_size=block_size),
      'jsd': streaming.jsd(x, y, block_size=block_size),
  }


def _values_and_grads(fn, x, y):
  """{name: (value, (d/dx, d/dy))} for every bound returned by fn."""
  names = fn(x, y).keys()
  return {name: jax.value_and_grad(lambda x, y, n=name: fn(x, y)[n],
                                   argnums=(0, 1))(x, y) for name in names}


# (K, block): blocks that divide K, that don't, one larger than K, K = 2.
# Every bound in two cases; in the others the three code paths (rows, rows
# and columns, rows without the diagonal) through infonce, symmetric and dv.
@pytest.mark.parametrize('k,block_size,names', [
    (7, 3, None), (64, 16, None), (2, 1, ('infonce', 'symmetric', 'dv')),
    (50, 128, ('infonce', 'symmetric', 'dv'))])
@pytest.mark.slow
def test_streaming_equals_dense(k, block_size, names):
  x, y = fx.gaussian_pairs(k, k, 6, 0.9)
  dense_form = k == 7         # the block_size=None form of the same functions

  def only(fn):
    return lambda x, y: {n: v for n, v in fn(x, y).items()
                         if names is None or n in names}

  @_jit                       # one program per case: compilation dominates
  def run(x, y):
    out = {'ref': _values_and_grads(only(_dense_refs), x, y),
           'streaming': _values_and_grads(only(functools.partial(
               _contrastive_all, block_size=block_size)), x, y)}
    if dense_form:
      out['dense'] = _values_and_grads(only(functools.partial(
          _contrastive_all, block_size=None)), x, y)
    return out

  out = run(x, y)
  _assert_close(out['streaming'], out['ref'], f'streaming K={k} block={block_size}')
  if dense_form:
    _assert_close(out['dense'], out['ref'], f'dense K={k}')


def test_nt_xent_matches_explicit_formula():
  x, y = fx.gaussian_pairs(3, 6, 5, 0.5)
  tau = 0.2

  def explicit(x, y):
    z = jnp.concatenate([x, y])
    z = z / jnp.linalg.norm(z, axis=1, keepdims=True)
    s = z @ z.T / tau
    n = z.shape[0]
    pos = jnp.concatenate([jnp.arange(6, 12), jnp.arange(0, 6)])
    logits = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, s)
    loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - s[jnp.arange(n), pos])
    return jnp.log(n - 1.0) - loss

  @_jit
  def run(x, y):
    vg = lambda f: jax.value_and_grad(f, argnums=(0, 1))(x, y)
    return {'explicit': vg(explicit),
            'dense': vg(lambda x, y: streaming.nt_xent(x, y, tau)),
            'streaming': vg(lambda x, y: streaming.nt_xent(x, y, tau,
                                                             block_size=5))}

  out = run(x, y)
  _assert_close(out['dense'], out['explicit'], 'nt_xent dense')
  _assert_close(out['streaming'], out['explicit'], 'nt_xent streaming')
  assert out['dense'][0] <= np.log(11) + 1e-6


def test_large_scores_keep_finite_gradients():
  # A strong critic: the left-out positive scores are ~1e3 above the rest;
  # their exp must not overflow into the (zero) gradient of excluded pairs.
  x, y = fx.gaussian_pairs(0, 16, 8, 0.999)

  @_jit        # dv and jsd: the two code paths that leave out the diagonal
  def run(x, y):
    return {f'{fn.__name__}/{b}': jax.value_and_grad(
        lambda x, y, fn=fn, b=b: fn(x, y, block_size=b), argnums=(0, 1))(x, y)
            for b in (None, 5) for fn in (streaming.dv, streaming.jsd)}

  for name, leaves in run(12.0 * x, 12.0 * y).items():
    assert all(np.all(np.isfinite(l)) for l in jax.tree.leaves(leaves)), name


def test_bfloat16_embeddings():
  x, y = fx.gaussian_pairs(1, 64, 16, 0.8)

  @_jit
  def run(x, y):
    xb, yb = x.astype(jnp.bfloat16), y.astype(jnp.bfloat16)
    f = lambda x: streaming.infonce(x, yb, block_size=16)
    return streaming.infonce(x, y), f(xb), jax.grad(f)(xb)

  ref, out, g = run(x, y)
  assert out.dtype == jnp.float32 and g.dtype == jnp.bfloat16
  np.testing.assert_allclose(out, ref, atol=0.05)


def test_streaming_memory_is_linear_in_k():
  """The compiled loss+grad of K = 4096 needs O(K B) scratch, dense O(K^2)."""
  k, d, b = 4096, 32, 256
  x = jax.ShapeDtypeStruct((k, d), jnp.float32)

  def temp_bytes(fn):
    compiled = jax.jit(jax.grad(fn, argnums=(0, 1))).lower(x, x).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  dense = temp_bytes(lambda x, y: bounds.infonce(x @ y.T))
  streamed = temp_bytes(lambda x, y: streaming.infonce(x, y, block_size=b))
  assert dense >= k * k * 4, dense                 # at least one K x K buffer
  assert streamed <= 8 * k * b * 4 + 16 * k * d * 4, streamed   # few (K, B)


def test_cosine_critic_and_learned_temperature():
  x, y = fx.gaussian_pairs(2, 32, 8, 0.9)
  critic = contrastive.Cosine(temperature=0.5, learn_temperature=True)

  def loss(params):
    ex, ey = critic.apply(params, x, y, method='embeddings')
    return -streaming.infonce(ex, ey, symmetric=True, block_size=8)

  @_jit
  def run(key):
    params = critic.init(key, x, y)
    scores = critic.apply(params, x, y)
    return params, scores, jax.value_and_grad(loss)(params)

  params, scores, (value, grad) = run(jax.random.PRNGKey(0))
  cos = (x / jnp.linalg.norm(x, axis=1, keepdims=True)) @ (
      y / jnp.linalg.norm(y, axis=1, keepdims=True)).T
  np.testing.assert_allclose(scores, cos / 0.5, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(-value, 0.5 * (
      bounds.infonce(scores) + bounds.infonce(scores.T)), rtol=1e-5)
  g = grad['params']['tau']['log_inverse_temperature']
  assert np.isfinite(g) and g != 0.0          # the temperature is learned
  fixed = contrastive.Cosine(temperature=0.1)
  assert not jax.tree.leaves(jax.eval_shape(fixed.init, jax.random.PRNGKey(0),
                                            x, y))


def test_input_validation():
  x = jnp.ones((8, 4))
  with pytest.raises(ValueError, match=r'same number of pairs K'):
    streaming.infonce(x, jnp.ones((7, 4)))
  with pytest.raises(ValueError, match=r'same embedding dimension'):
    streaming.infonce(x, jnp.ones((8, 3)))
  with pytest.raises(ValueError, match=r'2-D \(K, d\)'):
    streaming.infonce(jnp.ones(8), x)
  with pytest.raises(ValueError, match=r'block_size must be None'):
    streaming.infonce(x, x, block_size=0)
  with pytest.raises(ValueError, match=r"unknown collective 'tree'.*all_gather, ring"):
    streaming.infonce(x, x, collective='tree')
  with pytest.raises(ValueError, match=r'temperature must be > 0'):
    streaming.nt_xent(x, x, 0.0)
  with pytest.raises(ValueError, match=r'K >= 2'):
    streaming.infonce(x[:1], x[:1])


def test_default_block_size():
  assert streaming.default_block_size(2048) == 8192
  assert streaming.default_block_size(32768) == 512
  assert streaming.default_block_size(2**24) == 128


# ------------------------------------------------ parallel on one process --

def test_single_process_helpers():
  mesh = parallel.make_mesh()
  assert parallel.process_batch_slice(16, mesh) == slice(0, 16)
  x = np.arange(32.0).reshape(16, 2)
  gx = parallel.global_batch({'x': x}, mesh)['x']
  np.testing.assert_array_equal(gx, x)
  assert gx.sharding == parallel.batch_sharded(mesh)
  assert not parallel.initialize_distributed()        # nothing asks for it
  fn = parallel.batch_shard_map(functools.partial(
      streaming.infonce, axis_name=parallel.DATA_AXIS, collective='ring'), mesh)
  sharded, dense = _jit(lambda x: (fn(x, x), streaming.infonce(x, x)))(gx)
  np.testing.assert_allclose(sharded, dense, rtol=1e-6)


# ---------------------------------------------------- 8 devices (subprocess) --

MULTIDEVICE_CHECKS = ('bounds_on_sharded_batch', 'contrastive_sharded_vs_dense',
                      'train_step_8_vs_1', 'batch_not_divisible_is_an_error',
                      'checkpoint_across_device_counts',
                      'large_batch_experiment_tiny',
                      # The experiments ported onto train.train / sharded
                      # batches (issue 7): each trains on 8 devices.
                      'bounds_experiment_8_vs_1',
                      'dgi_8_vs_1', 'dgi_experiment_tiny',
                      'infograph_experiment_tiny',
                      'estimators_8_vs_1_and_experiment_tiny')


@pytest.fixture(scope='module')
def multidevice(jobs):
  workdir, job = jobs['multidevice']
  outputs = job.wait()
  results = {}
  for line in outputs[0][1].splitlines():
    if line.startswith('{'):
      record = json.loads(line)
      if 'check' in record:
        results[record['check']] = record
  return workdir, outputs, results


@pytest.mark.slow
@pytest.mark.parametrize('name', MULTIDEVICE_CHECKS)
def test_on_8_devices(multidevice, name):
  _, proc, results = multidevice
  if name not in results:
    pytest.fail(f'check {name!r} did not report; subprocess output:\n{_show(proc)}')
  assert results[name]['ok'], results[name]['detail']
  if results[name].get('skipped'):
    pytest.skip(results[name]['skipped'])


@pytest.mark.slow
def test_checkpoint_from_8_devices_resumes_in_a_1_device_process(multidevice):
  workdir, proc, results = multidevice
  if not results.get('checkpoint_across_device_counts', {}).get('ok'):
    pytest.fail(f'the 8-device side failed:\n{_show(proc)}')
  assert jax.device_count() == 1
  mesh = parallel.make_mesh()
  state = train.train(fx.train_config(), fx.contrastive_task('dense', mesh),
                      str(workdir / 'for_parent'), mesh=mesh, verbose=False)
  expected = np.load(workdir / 'expected_params.npz')
  got = fx.flatten(state.params)
  assert sorted(got) == sorted(expected.files)
  for key in expected.files:
    np.testing.assert_allclose(got[key], expected[key], rtol=2e-5, atol=2e-6,
                               err_msg=key)


# ----------------------------------------- 2 processes x 4 devices (real) --

@pytest.mark.slow
def test_two_processes_compute_the_global_infonce(jobs, tmp_path):
  from tests import two_process_worker as worker  # pylint: disable=g-import-not-at-top
  out_dir, job = jobs['two_process']
  outputs = job.wait()
  assert all(rc == 0 for rc, _, _ in outputs), _show(outputs)
  results = [json.loads((out_dir / f'result_{i}.json').read_text())
             for i in range(2)]
  # Really two processes of 4 devices each, each feeding its half of the batch.
  assert [r['process_index'] for r in results] == [0, 1]
  assert all(r['process_count'] == 2 and r['device_count'] == 8
             and r['local_device_count'] == 4 for r in results)
  assert [r['rows'] for r in results] == [[0, 32], [32, 64]]

  # The same quantities in this single process (one device).
  x, y = worker.global_data()
  ref = jax.value_and_grad(lambda x, y: bounds.infonce(x @ y.T),
                           argnums=(0, 1))(x, y)
  for r in results:
    for name in ('dense', 'ring', 'all_gather'):
      value, (gx, gy) = r[name]
      _assert_close((np.asarray(value), (np.asarray(gx), np.asarray(gy))), ref,
                    f'process {r["process_index"]} {name}')
  mesh = parallel.make_mesh()
  state = train.train(fx.train_config(num_steps=2, log_every=1, eval_every=1,
                                      checkpoint_every=2),
                      fx.contrastive_task('dense', mesh), str(tmp_path / 'one'),
                      mesh=mesh, verbose=False)
  expected = fx.flatten(state.params)
  for r in results:
    for key, value in r['train_params'].items():
      np.testing.assert_allclose(value, expected[key], rtol=2e-5, atol=2e-6,
                                 err_msg=key)
  # One process wrote the shared metrics file: one line per step.
  assert ([m['step'] for m in runs.read_metrics(str(out_dir / 'train'), 'train')]
          == [1, 2])
  assert (out_dir / 'train' / 'checkpoints' / '2').is_dir()

