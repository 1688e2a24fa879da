"""InfoNCE loss + gradient, dense vs memory-efficient: time and measured peak memory.

  python -m benchmarks.infonce_memory                       # K = 2048 ... 32768
  python -m benchmarks.infonce_memory --ks=2048,8192 --block_size=512
  python -m benchmarks.infonce_memory --ks=65536,262144 --methods=streaming  # GPU

For every (K, method) a fresh child process draws x, y ~ N(0, 1) of shape
(K, d) and times the jitted ``value_and_grad`` of the InfoNCE loss with
respect to x and y (median of at least ``--repeats`` calls and
``--min_seconds`` of calls, after a compiling warm-up):

* dense:      ``-bounds.infonce(x @ y.T)``: the K x K scores in memory;
* streaming:  ``-streaming.infonce(x, y, block_size=B)``: column blocks of B
              with a custom VJP; O(K B) memory, 4 matmuls instead of 3;
* fused:      ``implementation='pallas'``: the Pallas kernel
              (``infomax_jax.kernels.pairwise_lse``, B x B tiles kept on chip;
              5 matmuls: the backward pass recomputes the scores for dx and
              for dy). On CPU it runs in interpret mode: correct but not a
              speed measurement.

Memory is measured, not estimated: the parent reads each child's peak resident
set size from the kernel (``os.wait4`` rusage, ru_maxrss), which includes
the ~0.3 GiB of the Python + JAX runtime (the ``baseline`` row: the same child
doing no InfoNCE). On a GPU the peak device memory (``memory_stats()
['peak_bytes_in_use']``) is reported too. Dense runs whose K x K buffers
(about 2 K^2 x 4 bytes) would take more than half of the available host memory
are skipped on CPU and say so (and above ``--dense_max_k``).

Throughput columns: pairs/s = K^2 / time; matmul TFLOP/s counts 2 K^2 d per
matmul (3 for dense, 4 for streaming); '% of matmul peak' divides it by the
rate of a plain square matmul (n = 2048 on CPU, 8192 on GPU) in the same
dtype, timed by the ``matmul`` child: the attainable matmul peak of the device
(on a GPU compare it with the data-sheet peak too; float32 matmuls run as TF32
on NVIDIA GPUs under JAX's default precision).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

from absl import app
from absl import flags

_KS = flags.DEFINE_list('ks', ['2048', '4096', '8192', '16384', '32768'],
                        'Batch sizes K.')
_DIM = flags.DEFINE_integer('dim', 128, 'Embedding dimension d.')
_METHODS = flags.DEFINE_list('methods', ['dense', 'streaming'],
                             "Methods: 'dense', 'streaming', 'fused' (the Pallas "
                             "kernel: Triton on GPU; interpret mode, slow, on CPU).")
_DENSE_MAX_K = flags.DEFINE_integer(
    'dense_max_k', 0, 'Skip the dense method above this K (0: no limit; on CPU '
    'dense runs that need over half the available memory are skipped anyway).')
_BLOCK = flags.DEFINE_integer('block_size', 1024,
                              'Column block of the streaming method.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per configuration '
                                '(at least).')
_MIN_SECONDS = flags.DEFINE_float(
    'min_seconds', 2.0, 'Keep timing calls until they add up to this many '
    'seconds (many calls for small K: a stable median).')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16', 'float16'],
                           'dtype of the embeddings (scores accumulate in f32).')
_INTERLEAVED_MAX_K = flags.DEFINE_integer(
    'interleaved_max_k', 4096, 'Also time dense and streaming alternately in '
    'one process for K up to this (the speed ratio on a loaded machine).')
_INTERLEAVED_REPEATS = flags.DEFINE_integer(
    'interleaved_repeats', 15, 'Rounds of the interleaved timing.')
_PRECISION = flags.DEFINE_enum(
    'matmul_precision', 'default', ['default', 'high', 'highest'],
    "jax_default_matmul_precision ('default' lets float32 matmuls use TF32 on "
    "NVIDIA GPUs; 'highest' is full float32).")
_FROM_JSON = flags.DEFINE_string(
    'from_json', None, 'Only print the tables of a --json file of an earlier run.')
_JSON = flags.DEFINE_string('json', None, 'Also write the rows to this file.')
_CHILD = flags.DEFINE_string('child', None, 'Internal: run one configuration '
                             "('dense', 'streaming', 'baseline', 'matmul', "
                             "'interleaved').")
_K = flags.DEFINE_integer('k', 2048, 'Internal: K of the child.')


# ------------------------------------------------------------------ child --

def _child(method: str, k: int, dim: int, block: int, repeats: int,
           dtype: str, min_seconds: float = 0.0) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from infomax_jax import bounds  # pylint: disable=g-import-not-at-top
  from infomax_jax.bounds import streaming  # pylint: disable=g-import-not-at-top

  dt = jnp.dtype(dtype)
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  x = (0.1 * jax.random.normal(kx, (k, dim))).astype(dt)
  y = (0.1 * jax.random.normal(ky, (k, dim))).astype(dt)

  dense_loss = lambda x, y: -bounds.infonce(
      jnp.dot(x, y.T, preferred_element_type=jnp.float32))
  streaming_loss = lambda x, y: -streaming.infonce(x, y, block_size=block)
  fused_loss = lambda x, y: -streaming.infonce(x, y, block_size=block,
                                               implementation='pallas')

  if method == 'baseline':
    fn = jax.jit(lambda x, y: (jnp.sum(x * y), (x, y)))
  elif method == 'matmul':
    # A square GEMM: the attainable matmul rate of this device and dtype.
    n = 2048 if jax.devices()[0].platform == 'cpu' else 8192
    x = jax.random.normal(kx, (n, n)).astype(dt)
    y = jax.random.normal(ky, (n, n)).astype(dt)
    fn = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  elif method in ('dense', 'streaming', 'fused'):
    loss = {'dense': dense_loss, 'streaming': streaming_loss, 'fused': fused_loss}[method]
    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  elif method != 'interleaved':
    raise ValueError(f'unknown method {method!r}')

  if method == 'interleaved':
    # Dense and streaming alternately in one process: a fair ratio on a
    # machine whose load drifts (shared CPUs).
    fns = {'dense': jax.jit(jax.value_and_grad(dense_loss, argnums=(0, 1))),
           'streaming': jax.jit(jax.value_and_grad(streaming_loss, argnums=(0, 1)))}
    times = {name: [] for name in fns}
    for name, f in fns.items():
      jax.block_until_ready(f(x, y))
    for _ in range(repeats):
      for name, f in fns.items():
        t0 = time.perf_counter()
        jax.block_until_ready(f(x, y))
        times[name].append(time.perf_counter() - t0)
    return {'method': method, 'k': k, 'block_size': block,
            **{f'{n}_min_s': min(t) for n, t in times.items()},
            **{f'{n}_median_s': float(np.median(t)) for n, t in times.items()}}

  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(x, y))
  first = time.perf_counter() - t0
  times = []
  while len(times) < repeats or sum(times) < min_seconds:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(x, y))
    times.append(time.perf_counter() - t0)
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  row = {'method': method, 'k': k, 'dim': dim, 'dtype': dtype,
         'block_size': block if method in ('streaming', 'fused') else None,
         'seconds': float(np.median(times)), 'min_seconds': min(times),
         'calls': len(times),
         'first_call_s': first,
         'platform': device.platform, 'device_kind': device.device_kind,
         'device_peak_bytes': stats.get('peak_bytes_in_use')}
  if method == 'matmul':
    row['tflops'] = 2 * x.shape[0] ** 3 / row['seconds'] / 1e12
  elif method != 'baseline':
    row['loss'] = float(out[0])
  return row


# ----------------------------------------------------------------- parent --

def _mem_available_bytes() -> Optional[int]:
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def run_child(method: str, k: int, repeats: Optional[int] = None) -> dict:
  """Runs one configuration in a fresh process; adds its measured peak RSS."""
  cmd = [sys.executable, '-m', 'benchmarks.infonce_memory', f'--child={method}',
         f'--k={k}', f'--dim={_DIM.value}', f'--block_size={_BLOCK.value}',
         f'--repeats={repeats or _REPEATS.value}', f'--dtype={_DTYPE.value}',
         f'--matmul_precision={_PRECISION.value}',
         f'--min_seconds={_MIN_SECONDS.value}']
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with tempfile.TemporaryFile('w+') as fout, tempfile.TemporaryFile('w+') as ferr:
    proc = subprocess.Popen(cmd, cwd=root, stdout=fout, stderr=ferr, text=True)
    # wait4, not proc.wait: it returns this child's own resource usage.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    fout.seek(0)
    ferr.seek(0)
    out, err = fout.read(), ferr.read()
  rss = usage.ru_maxrss * (1 if sys.platform == 'darwin' else 1024)
  lines = [l for l in out.splitlines() if l.startswith('{')]
  if proc.returncode != 0 or not lines:
    return {'method': method, 'k': k, 'error': (err or out).strip()[-400:],
            'peak_rss_bytes': rss}
  row = json.loads(lines[-1])
  row['peak_rss_bytes'] = rss
  return row


def _fmt_bytes(b: Optional[float]) -> str:
  return '-' if b is None else f'{b / 2**30:.2f}'


def table(rows: list[dict], matmul_tflops: Optional[float]) -> str:
  lines = ['| K | method | block | time (ms) | vs dense | pairs/s | matmul TFLOP/s '
           '| % of matmul peak | peak RSS (GiB) | peak device mem (GiB) |',
           '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|']
  dense = {r['k']: r.get('seconds') for r in rows if r['method'] == 'dense'}
  for r in rows:
    if 'skipped' in r or 'error' in r:
      reason = r.get('skipped') or 'error: ' + r['error'][-120:]
      lines.append(f"| {r['k']} | {r['method']} | | {reason} | | | | | | |")
      continue
    sec = r['seconds']
    nmat = {'dense': 3, 'streaming': 4, 'fused': 5}.get(r['method'])
    tflops = nmat * 2 * r['k'] ** 2 * r['dim'] / sec / 1e12 if nmat else None
    ratio = (f"{sec / dense[r['k']]:.2f}x" if r['method'] in ('streaming', 'fused')
             and dense.get(r['k']) else '')
    pct = (f'{100 * tflops / matmul_tflops:.0f} %' if tflops and matmul_tflops
           else '')
    lines.append(
        f"| {r['k']} | {r['method']} | {r.get('block_size') or ''} | {1e3 * sec:.4g} | "
        f"{ratio} | {r['k'] ** 2 / sec:.3g} | "
        f"{'' if tflops is None else f'{tflops:.3g}'} | {pct} | "
        f"{_fmt_bytes(r['peak_rss_bytes'])} | {_fmt_bytes(r.get('device_peak_bytes'))} |")
  return '\n'.join(lines)


def print_interleaved(inter: list[dict]) -> None:
  if not inter:
    return
  print('\nInterleaved in one process (rounds of dense then streaming; min and '
        'median of the rounds):\n')
  print('| K | block | dense min (ms) | streaming min (ms) | ratio of mins | '
        'dense median (ms) | streaming median (ms) | ratio of medians |')
  print('|---:|---:|---:|---:|---:|---:|---:|---:|')
  for r in inter:
    if 'error' in r:
      print(f"| {r['k']} | error: {r['error'][-200:]} |")
      continue
    print(f"| {r['k']} | {r['block_size']} | {1e3 * r['dense_min_s']:.4g} | "
          f"{1e3 * r['streaming_min_s']:.4g} | "
          f"{r['streaming_min_s'] / r['dense_min_s']:.2f}x | "
          f"{1e3 * r['dense_median_s']:.4g} | {1e3 * r['streaming_median_s']:.4g} | "
          f"{r['streaming_median_s'] / r['dense_median_s']:.2f}x |")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if _FROM_JSON.value:                 # re-print the tables of an earlier run
    with open(_FROM_JSON.value) as f:
      saved = json.load(f)
    print(table(saved['rows'], saved['matmul']['tflops']))
    print_interleaved(saved.get('interleaved', []))
    return
  if _CHILD.value:
    if _PRECISION.value != 'default':
      import jax  # pylint: disable=g-import-not-at-top
      jax.config.update('jax_default_matmul_precision', _PRECISION.value)
    print(json.dumps(_child(_CHILD.value, _K.value, _DIM.value, _BLOCK.value,
                            _REPEATS.value, _DTYPE.value, _MIN_SECONDS.value)),
          flush=True)
    return
  base = run_child('baseline', int(_KS.value[0]))
  mm = run_child('matmul', 0)
  if 'error' in base or 'error' in mm:
    raise RuntimeError(f'child failed: {base.get("error") or mm.get("error")}')
  print(f"device: {base['platform']} ({base['device_kind']}), d = {_DIM.value}, "
        f"{_DTYPE.value} (matmul precision {_PRECISION.value}), median of "
        f">= {_REPEATS.value} calls (>= {_MIN_SECONDS.value:g} s) after a warm-up; "
        f"runtime baseline RSS {_fmt_bytes(base['peak_rss_bytes'])} GiB; "
        f"plain matmul {mm['tflops']:.3g} TFLOP/s", flush=True)
  rows = []
  for k in map(int, _KS.value):
    for method in _METHODS.value:
      # Dense keeps ~2 K x K float32 buffers (measured: 2.36 GiB at K = 16384).
      need = 2 * k * k * 4 + 2**29
      avail = _mem_available_bytes()
      if method == 'dense' and _DENSE_MAX_K.value and k > _DENSE_MAX_K.value:
        row = {'method': method, 'k': k,
               'skipped': f'skipped: K > --dense_max_k={_DENSE_MAX_K.value}'}
      elif (method == 'dense' and base['platform'] == 'cpu' and avail
            and need > avail / 2):
        row = {'method': method, 'k': k, 'skipped':
               f'skipped: needs ~{need / 2**30:.1f} GiB, '
               f'{avail / 2**30:.1f} GiB available'}
      else:
        row = run_child(method, k)
      rows.append(row)
      shown = {key: row.get(key) for key in ('k', 'method', 'seconds',
                                              'peak_rss_bytes', 'skipped', 'error')}
      print(json.dumps(shown), flush=True)
  print(table(rows, mm['tflops']), flush=True)
  inter = []
  for k in map(int, _KS.value):
    if k <= _INTERLEAVED_MAX_K.value:
      inter.append(run_child('interleaved', k, repeats=_INTERLEAVED_REPEATS.value))
  print_interleaved(inter)
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump({'baseline': base, 'matmul': mm, 'rows': rows,
                 'interleaved': inter}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
