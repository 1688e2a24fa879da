"""Whole-step memory vs batch size K: plain, streaming loss, streaming loss + GradCache.

  python -m benchmarks.large_batch_memory                     # K = 1024 ... 65536
  python -m benchmarks.large_batch_memory --ks=65536 --execute=gradcache

The step is a real two-view training step of Tschannen et al.'s Fig. 3 model:
MLP encoders [300, 300, 100] on the 392-pixel top and bottom halves of MNIST,
the bilinear critic f = g1(x)^T W g2(y), minus InfoNCE, its gradient, and an
Adam update (parameters and optimizer state donated, as in
``infomax_jax.train``). Three ways to compute it:

* plain:      ``bounds.infonce`` on the dense (K, K) scores, autodiff;
* streaming:  ``bounds.streaming.infonce`` on (g1 W, g2) in column blocks
              (custom VJP): the loss is O(K B), the encoders' activations are
              still kept for all K rows;
* gradcache:  streaming + ``gradcache.chunked_apply`` on both encoders: pass 1
              embeds ``--chunk`` rows at a time without keeping activations,
              pass 2 re-runs each chunk with a VJP against its rows of the
              embedding gradient.

Memory is XLA's own account of the compiled program
(``jit(step).lower(...).compile().memory_analysis()``): nothing is run, so
K = 65536 dense (a 16 GiB score matrix) costs a compile only. ``total`` is
arguments + outputs + temporaries - aliased (donated) buffers: everything the
step holds at its peak (XLA:CPU's ``peak_memory_in_bytes`` counts the
arguments only); ``temp`` the temporaries alone; ``args`` the inputs (the
two (K, 392) halves, parameters, Adam state).
``--execute=METHOD`` also runs that method's step twice per K in a fresh
child process and reports its peak resident set size (VmHWM, including the
Python + JAX runtime: the ``baseline`` method, which builds the step and
runs nothing) and the second step's time.
"""

import json
import os
import subprocess
import sys
import time
import types
from typing import Sequence

from absl import app
from absl import flags


def _define_flags() -> dict:
  """The command-line flags, defined only when run as a program (the module is
  also imported by tests/test_gradcache.py, beside other benchmarks' flags)."""
  # pylint: disable=invalid-name
  _KS = flags.DEFINE_list('ks', ['1024', '4096', '16384', '65536'], 'Batch sizes K.')
  _METHODS = flags.DEFINE_list('methods', ['plain', 'streaming', 'gradcache'],
                               "Methods: 'plain', 'streaming', 'gradcache'.")
  _CHUNK = flags.DEFINE_integer('chunk', 4096, 'GradCache rows per encoder chunk.')
  _BLOCK = flags.DEFINE_integer('block_size', 1024, 'Column block of the streaming loss.')
  _EXECUTE = flags.DEFINE_list('execute', [], 'Methods to also run once per K in a '
                               'child process (peak RSS and step time).')
  _CHILD = flags.DEFINE_string('child', None, 'Internal: run METHOD,K once.')
  return dict(ks=_KS, methods=_METHODS, chunk=_CHUNK, block=_BLOCK, execute=_EXECUTE,
              child=_CHILD)


_F = types.SimpleNamespace()   # the flags, once defined


FEATURES = (300, 300, 100)
PIXELS = 392


def build(method: str, k: int, chunk: int, block: int):
  """(jitted step, example arguments) of one method at batch k."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  from infomax_jax import bounds  # pylint: disable=g-import-not-at-top
  from infomax_jax import critics  # pylint: disable=g-import-not-at-top
  from infomax_jax import encoders  # pylint: disable=g-import-not-at-top
  from infomax_jax import gradcache  # pylint: disable=g-import-not-at-top
  from infomax_jax import twoview  # pylint: disable=g-import-not-at-top
  from infomax_jax.bounds import streaming  # pylint: disable=g-import-not-at-top

  enc = lambda: encoders.make_encoder('mlp', features=FEATURES)
  model = twoview.TwoView(enc(), enc(), critics.make_critic('bilinear'))
  dummy = jnp.zeros((2, PIXELS))
  params = model.init(jax.random.PRNGKey(0), dummy, dummy)['params']
  opt = optax.adam(1e-3)

  def loss(p, x, y):
    if method == 'plain':
      return -bounds.infonce(model.apply({'params': p}, x, y))
    size = chunk if method == 'gradcache' else None
    gx = gradcache.encode(model.encoder_x, p['encoder_x'], x, size)
    gy = gradcache.encode(model.encoder_y, p['encoder_y'], y, size)
    return -streaming.infonce(gx @ p['critic']['kernel'], gy, block_size=block)

  def step(p, opt_state, x, y):
    value, grads = jax.value_and_grad(loss)(p, x, y)
    updates, opt_state = opt.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state, value

  kx, ky = jax.random.split(jax.random.PRNGKey(1))
  x = jax.random.uniform(kx, (k, PIXELS))
  y = jax.random.uniform(ky, (k, PIXELS))
  return jax.jit(step, donate_argnums=(0, 1)), (params, opt.init(params), x, y)


def compiled_memory(method: str, k: int, chunk: int, block: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  fn, args = build(method, k, chunk, block)
  shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
  t0 = time.perf_counter()
  mem = fn.lower(*shapes).compile().memory_analysis()
  total = (mem.argument_size_in_bytes + mem.output_size_in_bytes
           + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
  return {'method': method, 'k': k, 'total': total,
          'temp': mem.temp_size_in_bytes, 'args': mem.argument_size_in_bytes,
          'compile_s': time.perf_counter() - t0}


def _child(method: str, k: int, chunk: int, block: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  if method == 'baseline':
    build('gradcache', k, chunk, block)
    return {'method': method, 'k': k, 'first_step_s': 0.0, 'step_s': 0.0,
            'loss': float('nan')}
  fn, args = build(method, k, chunk, block)
  t0 = time.perf_counter()
  params, opt_state, value = jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  x, y = args[2], args[3]
  t0 = time.perf_counter()
  _, _, value2 = jax.block_until_ready(fn(params, opt_state, x, y))
  return {'method': method, 'k': k, 'first_step_s': first,
          'step_s': time.perf_counter() - t0, 'loss': float(value),
          'loss_after_one_step': float(value2)}


def run_child(method: str, k: int) -> dict:
  cmd = [sys.executable, '-m', 'benchmarks.large_batch_memory', f'--child={method},{k}',
         f'--chunk={_F.chunk.value}', f'--block_size={_F.block.value}']
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  out, err = proc.communicate()
  lines = [l for l in out.splitlines() if l.startswith('{')]
  if proc.returncode != 0 or not lines:
    return {'error': (err or out).strip()[-300:]}
  return json.loads(lines[-1])


def _gib(b) -> str:
  return '–' if b is None else f'{b / 2**30:.3f}'


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if _F.child.value:
    method, k = _F.child.value.split(',')
    row = _child(method, int(k), _F.chunk.value, _F.block.value)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    # (which compiled the dense K = 65536 step) through fork and exec.
    with open('/proc/self/status') as f:
      row['peak_rss'] = next(int(l.split()[1]) * 1024 for l in f
                             if l.startswith('VmHWM:'))
    print(json.dumps(row), flush=True)
    return
  import jax  # pylint: disable=g-import-not-at-top
  print(f'device: {jax.devices()[0].platform}; Fig. 3 step: MLP encoders {FEATURES} '
        f'on {PIXELS} pixels, bilinear critic, -InfoNCE, Adam; streaming block '
        f'{_F.block.value}, GradCache chunk {_F.chunk.value}; compiled memory analysis '
        '(GiB)', flush=True)
  rows = {}
  for k in map(int, _F.ks.value):
    for method in _F.methods.value:
      rows[k, method] = compiled_memory(method, k, _F.chunk.value, _F.block.value)
      print(json.dumps(rows[k, method]), flush=True)
  runs = {}
  for k in map(int, _F.ks.value):
    for method in _F.execute.value:
      runs[k, method] = run_child(method, k)
      print(json.dumps({'k': k, 'method': method, **runs[k, method]}), flush=True)
  head = ' | '.join(f'{m} total | {m} temp' for m in _F.methods.value)
  print(f'\n| K | args | {head} |')
  print('|---:|---:|' + '---:|' * (2 * len(_F.methods.value)))
  for k in map(int, _F.ks.value):
    cells = ' | '.join(f'{_gib(rows[k, m]["total"])} | {_gib(rows[k, m]["temp"])}'
                       for m in _F.methods.value)
    print(f'| {k} | {_gib(rows[k, _F.methods.value[0]]["args"])} | {cells} |')
  if runs:
    print('\n| K | method | peak RSS (GiB) | step (s) | first step incl. compile (s) '
          '| loss |')
    print('|---:|---|---:|---:|---:|---:|')
    for (k, m), r in runs.items():
      if 'error' in r:
        print(f'| {k} | {m} | error: {r["error"][-100:]} | | | |')
        continue
      print(f'| {k} | {m} | {_gib(r["peak_rss"])} | {r["step_s"]:.2f} | '
            f'{r["first_step_s"]:.2f} | {r["loss"]:.4f} |')


if __name__ == '__main__':
  _F.__dict__.update(_define_flags())
  app.run(main)
