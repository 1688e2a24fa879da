"""Exact vs matrix-free log condition numbers at 392, 1536 and 3072 dimensions.

  python -m benchmarks.conditioning_matrix_free [--inputs=16] [--rtol=1e-2]
      [--dims=392,1536,3072] [--max_iters=256] [--dense_max_dim=1536]
  python -m benchmarks.conditioning_matrix_free --dims=3072 --maps=convnet,dim_encoder

One table from one run, the same inputs for both paths:
``jacobian.log_condition_numbers(f, xs)`` (exact: jacfwd + SVD, one input per
chunk) vs ``jacobian.log_condition_numbers(f, xs, method='matrix_free',
rtol=...)``, on three maps with a wide spectrum:

* ``realnvp``: a randomly perturbed RealNVP (4 affine-softplus couplings,
  conditioners [256], init std 0.05), matrix-free with its inverse;
* ``resmlp_lowrank``: a non-invertible residual MLP, 5 blocks x + relu(W x +
  b) with rank-8 symmetric W (eigenvalues 3, 2, -2, -0.9 ... -0.995: blocks
  that are not injective and nearly cancel the identity in some directions)
  and biases N(0, 0.1^2); matrix-free on J alone. J - I has rank <= 40, so
  the Krylov space sees few distinct singular values;
* ``resmlp_dense``: the same with dense W ~ N(0, 1/n) (||W|| ~ 2): small
  singular values fill the bottom of the spectrum, where no Krylov method of
  a few hundred iterations resolves sigma_min: expected to be flagged
  (``converged = False``), which is the point of the flag (up to
  --dense_max_dim);
* with ``--maps=convnet,dim_encoder`` (3072-d only), two image encoders
  at their random init on 32×32×3 inputs: ``convnet`` (Tschannen's ConvNet, 100 features) and
  ``dim_encoder`` (DIM conv 64-128-256, FC 1024, Y 64, LayerNorm);
  rectangular, kappa = sigma_1 / sigma_min(m, n), exact path by jacrev.

Columns: seconds per input (wall, and process CPU: fairer on a shared box;
compiled ahead of time, best of --repeats), their ratio exact/matrix-free, the
exact log kappa, max |log kappa_mf - log kappa_exact| over the inputs, how
many inputs the matrix-free path certified, and its Krylov dimension.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from infomax_jax import encoders
from infomax_jax import flows
from infomax_jax import jacobian

MAPS = ('realnvp', 'resmlp_lowrank', 'resmlp_dense')
IMAGE_MAPS = ('convnet', 'dim_encoder')   # 32×32×3 -> features, at dim 3072 only
# Eigenvalues of each rank-8 residual kernel W = U diag(g) U^T: -2 makes the
# block t + relu(-2 t + c) non-monotone along that direction (not injective),
# the values near -1 nearly cancel the identity (small singular values).
_LOWRANK_GAINS = np.array([3.0, 2.0, -2.0, -0.9, -0.95, -0.98, -0.99, -0.995])


def make_map(name: str, dim: int, seed: int = 0):
  """(f, inverse or None) of benchmark map ``name`` on R^dim."""
  key = jax.random.PRNGKey(seed)
  if name in IMAGE_MAPS:
    image = (1, 32, 32, 3)
    if name == 'convnet':
      model = encoders.ConvNet(features=100, image_shape=image[1:])
      params = model.init(key, jnp.zeros(image))
      return (lambda x: model.apply(params, x.reshape(image))[0]), None
    model = encoders.DIMEncoder(norm='layer')
    params = model.init(key, jnp.zeros(image), train=False)
    return (lambda x: model.apply(params, x.reshape(image), train=False)['y'][0]), None
  if name == 'realnvp':
    model = flows.RealNVP(num_couplings=4, hidden=(256,), coupling='affine_softplus',
                          init_std=0.05)
    params = model.init(key, jnp.zeros((1, dim)))
    return (lambda x: model.apply(params, x),
            lambda y: model.apply(params, y, method=model.inverse))
  if name not in MAPS:
    raise ValueError(f'unknown map {name!r}; expected one of {MAPS}')
  model = encoders.ResidualMLP(width=dim, num_layers=5, init_std=1.0 / np.sqrt(dim))
  params = model.init(key, jnp.zeros((1, dim)))
  rng = np.random.default_rng(seed)
  blocks = {}
  for i, (block, p) in enumerate(sorted(params['params'].items())):
    kernel = np.asarray(p['kernel'])
    if name == 'resmlp_lowrank':
      u, _ = np.linalg.qr(rng.normal(size=(dim, len(_LOWRANK_GAINS))))
      kernel = (u * _LOWRANK_GAINS) @ u.T
    blocks[block] = {'kernel': jnp.asarray(kernel, jnp.float32),
                     'bias': jnp.asarray(0.1 * rng.normal(size=dim), jnp.float32)}
  params = {'params': blocks}
  return (lambda x: model.apply(params, x)), None


def _timed(fn, xs, repeats: int):
  """Best (wall, cpu) seconds of the jitted ``fn(xs)`` over ``repeats`` runs,
  compiled ahead of time (compilation not timed, no warm-up run)."""
  compiled = jax.jit(fn).lower(xs).compile()
  wall, cpu = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(compiled(xs))
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return min(wall), min(cpu), out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dims', default='392,1536,3072')
  parser.add_argument('--maps', default=','.join(MAPS))
  parser.add_argument('--inputs', type=int, default=16)
  # resmlp_dense is flagged at every size; at 3072 its exact reference alone
  # takes ~70 s, which would push the run past a shared-machine time slot.
  parser.add_argument('--dense_max_dim', type=int, default=1536)
  parser.add_argument('--rtol', type=float, default=1e-2)
  parser.add_argument('--max_iters', type=int, default=jacobian.DEFAULT_MAX_ITERS)
  parser.add_argument('--repeats', type=int, default=1)
  args = parser.parse_args()
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}; {args.inputs} inputs '
        f'per cell, rtol {args.rtol} (|d log kappa| <= {np.log1p(args.rtol):.4f}), '
        f'max_iters {args.max_iters}; seconds per input')
  header = (f'| {"map":<15}| {"dim":>5} | {"exact s (cpu)":>14} | {"mf s (cpu)":>12} | '
            f'{"ratio":>6} | {"log kappa":>9} | {"max dlogk":>9} | {"certified":>9} '
            f'| {"k":>4} |')
  print(header)
  print('|' + '|'.join('-' * len(c) for c in header.split('|')[1:-1]) + '|')
  for dim in [int(d) for d in args.dims.split(',')]:
    xs = jax.random.uniform(jax.random.PRNGKey(dim), (args.inputs, dim))
    for name in args.maps.split(','):
      if (name == 'resmlp_dense' and dim > args.dense_max_dim) or (
          name in IMAGE_MAPS and dim != 3072):
        continue
      f, inverse = make_map(name, dim)
      exact = lambda xs, f=f: jacobian.log_condition_numbers(f, xs, chunk_size=1)
      mf = lambda xs, f=f, inverse=inverse: jacobian.log_condition_numbers(
          f, xs, method='matrix_free', rtol=args.rtol, inverse=inverse,
          max_iters=args.max_iters, chunk_size=None)
      ew, ec, e = _timed(exact, xs, args.repeats)
      mw, mc, r = _timed(mf, xs, args.repeats)
      e = np.asarray(e, np.float64)
      err = np.max(np.abs(np.asarray(r.log_kappa, np.float64) - e))
      n_in = args.inputs
      print(f'| {name:<15}| {dim:>5} | {ew / n_in:>6.3f} ({ec / n_in:>5.2f}) | '
            f'{mw / n_in:>5.3f} ({mc / n_in:>4.2f}) | {ew / mw:>6.1f} | '
            f'{np.mean(e):>9.3f} | {err:>9.2e} | '
            f'{int(np.sum(r.converged)):>4}/{n_in:<4} | {int(np.max(r.num_iters)):>4} |',
            flush=True)


if __name__ == '__main__':
  main()
