"""Times Jacobian condition numbers: JAX vs PyTorch, and matrix-free vs exact.

  python -m benchmarks.jacobian_cond [--couplings=4] [--hidden=256] [--inputs=128]
      [--lanczos_iters=32,96] [--lanczos_inputs=2] [--repeats=1] [--no_torch]

1. log kappa of the Jacobian of a 392-d RealNVP (affine softplus couplings,
   conditioner init std 0.05 so the Jacobian is far from orthogonal) at
   --inputs points: ``jacobian.log_condition_numbers`` (jacfwd vmapped in
   chunks of 32 + SVD, one jitted program) vs PyTorch
   ``torch.func.vmap(torch.func.jacfwd(f))`` + ``torch.linalg.svdvals`` on the
   same weights, permutations and inputs (benchmark-only dependency).
2. The matrix-free Golub-Kahan-Lanczos estimate
   (``jacobian.lanczos_log_condition_numbers``) vs the exact path at 392 and
   1536 dimensions (a CIFAR-10 half, 32 x 16 x 3), on --lanczos_inputs points:
   time and relative errors of sigma_max, sigma_min and log kappa.

Prints wall and process-CPU seconds (best of --repeats, after one compiling
call); on a shared machine wall time mostly measures the other processes'
load, so CPU time is the fairer comparison.
"""

import argparse
import time
from typing import Callable

import jax
import numpy as np

from infomax_jax import flows
from infomax_jax import jacobian

_INIT_STD = 0.05


def _best(fn: Callable[[], object], repeats: int,
          warmup: bool = True) -> tuple[float, float, object]:
  """Best (wall, cpu) seconds of ``fn()`` over ``repeats`` (after a warm-up call)."""
  out = fn() if warmup else None
  wall, cpu = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return min(wall), min(cpu), out


def _flow(dim: int, couplings: int, hidden: int):
  model = flows.RealNVP(num_couplings=couplings, hidden=(hidden,),
                        coupling='affine_softplus', init_std=_INIT_STD)
  xs = jax.random.uniform(jax.random.PRNGKey(0), (128, dim))
  params = model.init(jax.random.PRNGKey(1), xs[:2])
  return model, params


def _torch_flow(model, params, dim: int):
  """The same RealNVP in PyTorch (functional, weights copied from ``params``)."""
  import torch
  import torch.nn.functional as F
  perms = [torch.tensor(np.array(p), dtype=torch.long) for p in model.permutations(dim)]
  layers = []
  for i in range(model.num_couplings):
    p = params['params'][f'coupling_{i}']
    layers.append([(torch.as_tensor(np.asarray(p[n]['kernel'])),
                    torch.as_tensor(np.asarray(p[n]['bias'])))
                   for n in ('hidden_0', 'out')])
  shift_one = float(np.log(np.expm1(1.0)))
  d1 = dim // 2

  def f(x):
    for perm, ((w0, b0), (w1, b1)) in zip(perms, layers):
      x = x[perm]
      x1, x2 = x[:d1], x[d1:]
      h = F.linear(torch.relu(x1 @ w0 + b0), w1.T, b1)
      shift, raw = h[:dim - d1], h[dim - d1:]
      x = torch.cat([x1, x2 * F.softplus(raw + shift_one) + shift])
    return x
  return f


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--couplings', type=int, default=4)
  parser.add_argument('--hidden', type=int, default=256)
  parser.add_argument('--inputs', type=int, default=128)
  parser.add_argument('--chunk', type=int, default=32)
  parser.add_argument('--lanczos_iters', default='32,96')
  parser.add_argument('--lanczos_inputs', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument('--no_torch', action='store_true')
  args = parser.parse_args()
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}; RealNVP '
        f'{args.couplings} affine_softplus couplings, conditioner [{args.hidden}]')

  # 1. JAX vs PyTorch, exact log kappa of a 392-d flow at --inputs points.
  dim = 392
  model, params = _flow(dim, args.couplings, args.hidden)
  xs = jax.random.uniform(jax.random.PRNGKey(2), (args.inputs, dim))
  f = lambda x: model.apply(params, x)
  exact = jax.jit(lambda xs: jacobian.log_condition_numbers(
      f, xs, chunk_size=args.chunk))
  jw, jc, jax_vals = _best(lambda: exact(xs).block_until_ready(), args.repeats)
  print(f'\n[1] log kappa of {args.inputs} Jacobians (392 x 392), exact')
  print(f'{"impl":<34}{"wall s":>9}{"cpu s":>9}')
  print(f'{"JAX jacfwd+vmap(chunks)+svd":<34}{jw:>9.2f}{jc:>9.2f}')
  if not args.no_torch:
    import torch
    tf = _torch_flow(model, params, dim)
    txs = torch.as_tensor(np.asarray(xs))
    def torch_run():
      with torch.no_grad():
        outs = []
        for chunk in torch.split(txs, args.chunk):
          s = torch.linalg.svdvals(torch.func.vmap(torch.func.jacfwd(tf))(chunk))
          outs.append(torch.log(s[:, 0]) - torch.log(s[:, -1]))
        return torch.cat(outs)
    tw, tc, torch_vals = _best(torch_run, args.repeats, warmup=False)  # eager
    print(f'{"PyTorch func.jacfwd+vmap+svdvals":<34}{tw:>9.2f}{tc:>9.2f}')
    diff = np.max(np.abs(torch_vals.numpy() - np.asarray(jax_vals)))
    print(f'ratio PyTorch/JAX: wall {tw / jw:.2f}x, cpu {tc / jc:.2f}x; '
          f'max |log kappa diff| {diff:.2e}')
  print('log kappa percentiles (0..100):',
        np.round(jacobian.percentiles(jax_vals), 3).tolist())

  # 2. Matrix-free vs exact at 392 and 1536 dimensions.
  iters = [int(k) for k in args.lanczos_iters.split(',')]
  print(f'\n[2] matrix-free (Golub-Kahan-Lanczos) vs exact, '
        f'{args.lanczos_inputs} inputs')
  print(f'{"dim":>5}{"method":>14}{"wall s":>9}{"cpu s":>9}'
        f'{"rel err smax":>14}{"rel err smin":>14}{"rel err logk":>14}')
  for dim in (392, 1536):
    model, params = _flow(dim, args.couplings, args.hidden)
    f = lambda x, model=model, params=params: model.apply(params, x)
    xs = jax.random.uniform(jax.random.PRNGKey(3), (args.lanczos_inputs, dim))
    svd = jax.jit(lambda xs, f=f: jacobian.singular_values(f, xs, chunk_size=1))
    w, c, s = _best(lambda: svd(xs).block_until_ready(), args.repeats)
    s = np.asarray(s, np.float64)
    exact_logk = np.log(s[:, 0] / s[:, -1])
    print(f'{dim:>5}{"exact":>14}{w:>9.2f}{c:>9.2f}{"-":>14}{"-":>14}{"-":>14}'
          f'   (log kappa {np.round(exact_logk, 3).tolist()})')
    for k in iters:
      lanczos = jax.jit(lambda xs, f=f, k=k: jax.lax.map(
          lambda x: jacobian.lanczos_singular_values(f, x, num_iters=k), xs))
      w, c, r = _best(lambda: lanczos(xs).block_until_ready(), args.repeats)
      r = np.asarray(r, np.float64)
      err_max = np.max(np.abs(r[:, 0] / s[:, 0] - 1))
      err_min = np.max(np.abs(r[:, -1] / s[:, -1] - 1))
      err_logk = np.max(np.abs(np.log(r[:, 0] / r[:, -1]) / exact_logk - 1))
      print(f'{dim:>5}{f"lanczos k={k}":>14}{w:>9.3f}{c:>9.3f}'
            f'{err_max:>14.2e}{err_min:>14.2e}{err_logk:>14.2e}')


if __name__ == '__main__':
  main()
