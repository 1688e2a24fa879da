"""Checks that need 8 devices; run by tests/test_parallel.py in a subprocess.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python tests/multidevice_checks.py --workdir=/tmp/md

The flag must be set before JAX starts, so these checks cannot run inside the
main pytest process (it has one CPU device). Each check prints one JSON line
``{"check": name, "ok": bool, "detail": "..."}`` (plus ``"skipped": reason``
when it could not run, e.g. the real-data checks without $INFOMAX_DATA_DIR);
the exit status is non-zero when any check failed. ``--workdir`` keeps a
checkpoint written on 8 devices (and the parameters expected after resuming
it) for the 1-device side of the checkpoint test in the parent process.
"""

import argparse
import functools
import json
import os
import shutil
import sys
import time
import traceback

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from infomax_jax import bounds  # pylint: disable=g-import-not-at-top,wrong-import-position
from infomax_jax import parallel  # pylint: disable=wrong-import-position
from infomax_jax import train  # pylint: disable=wrong-import-position
from infomax_jax.bounds import streaming  # pylint: disable=wrong-import-position
from tests import parallel_fixtures as fx  # pylint: disable=wrong-import-position

RESULTS = []


class Skip(Exception):
  """Raised by a check that cannot run here (e.g. no real data folder)."""


def check(fn):
  """Runs ``fn`` now; records ok or the assertion's message."""
  t0, c0 = time.perf_counter(), time.process_time()
  try:
    detail = fn() or ''
    RESULTS.append({'check': fn.__name__, 'ok': True, 'detail': str(detail)})
  except Skip as e:
    RESULTS.append({'check': fn.__name__, 'ok': True, 'skipped': str(e),
                    'detail': ''})
  except Exception:  # pylint: disable=broad-except
    RESULTS.append({'check': fn.__name__, 'ok': False,
                    'detail': traceback.format_exc()[-3000:]})
  RESULTS[-1]['seconds'] = round(time.perf_counter() - t0, 1)
  RESULTS[-1]['cpu_seconds'] = round(time.process_time() - c0, 1)
  print(json.dumps(RESULTS[-1]), flush=True)
  return fn


def assert_close(a, b, what, rtol=2e-5, atol=2e-6):
  for path, x, y in zip(jax.tree_util.tree_flatten_with_path(a)[0],
                        jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                               err_msg=f'{what} at {jax.tree_util.keystr(path[0])}')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', required=True)
  workdir = parser.parse_args().workdir
  assert jax.device_count() == 8, (
      f'needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8), '
      f'got {jax.device_count()}')
  # The train runs below compile the same programs again (each train() call
  # builds its own jitted chunk); the persistent cache makes repeats cheap.
  jax.config.update('jax_compilation_cache_dir', os.path.join(workdir, 'jax_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  mesh8 = parallel.make_mesh()
  mesh1 = parallel.make_mesh(jax.devices()[:1])

  @check
  def bounds_on_sharded_batch():
    """infonce, nwj, dv, jsd of a critic on a batch sharded over 8 devices."""
    x, y = fx.gaussian_pairs(0, 64, fx.DIM)
    critic = fx.EmbeddingCritic()
    params = jax.jit(critic.init)(jax.random.PRNGKey(1), x, y)

    def all_bounds(params, x, y):     # value and gradients of each bound
      return {name: jax.value_and_grad(
          lambda p, x, y: getattr(bounds, name)(critic.apply(p, x, y)),
          argnums=(0, 1, 2))(params, x, y)
              for name in ('infonce', 'nwj', 'dv', 'jsd')}

    ref = jax.jit(all_bounds)(*jax.device_put((params, x, y), jax.devices()[0]))
    args = (jax.device_put(params, parallel.replicated(mesh8)),
            jax.device_put(x, parallel.batch_sharded(mesh8)),
            jax.device_put(y, parallel.batch_sharded(mesh8)))
    assert len(args[1].sharding.device_set) == 8
    compiled = jax.jit(all_bounds).lower(*args).compile()
    hlo = compiled.as_text()
    assert 'all-gather' in hlo or 'all-reduce' in hlo, 'no collective in the HLO'
    out = compiled(*args)
    assert_close(out, ref, 'bounds')
    return ' '.join(f'{k}={float(v[0]):.4f}' for k, v in out.items())

  @check
  def contrastive_sharded_vs_dense():
    """streaming.* under shard_map (all_gather and ring) == bounds.* dense."""
    x, y = fx.gaussian_pairs(2, 48, fx.DIM, 0.5)
    refs = {
        'infonce': lambda x, y: bounds.infonce(x @ y.T),
        'symmetric': lambda x, y: 0.5 * (bounds.infonce(x @ y.T)
                                         + bounds.infonce(y @ x.T)),
        'dv': lambda x, y: bounds.dv(x @ y.T),
        'nwj': lambda x, y: bounds.nwj(x @ y.T),
        'jsd': lambda x, y: bounds.jsd(x @ y.T),
        'nt_xent': lambda x, y: streaming.nt_xent(x, y, 0.5),
    }
    fns = {
        'infonce': streaming.infonce,
        'symmetric': functools.partial(streaming.infonce, symmetric=True),
        'dv': streaming.dv, 'nwj': streaming.nwj, 'jsd': streaming.jsd,
        'nt_xent': functools.partial(streaming.nt_xent, temperature=0.5),
    }
    # 6 rows per device: block 5 does not divide the 48 gathered columns,
    # block 4 does not divide a ring step's 6 columns. Dense per-device
    # scores (block None) only for InfoNCE: the other bounds share its code.
    streamed = (('all_gather', 5), ('ring', 4))
    dense = (('all_gather', None), ('ring', None))

    def all_refs(x, y):
      return {name: jax.value_and_grad(f, argnums=(0, 1))(x, y)
              for name, f in refs.items()}

    def all_sharded(x, y):            # one program: one compilation
      out = {}
      for name, fn in fns.items():
        variants = streamed + (dense if name in ('infonce', 'symmetric') else ())
        for collective, block_size in variants:
          f = parallel.batch_shard_map(functools.partial(
              fn, block_size=block_size, axis_name=parallel.DATA_AXIS,
              collective=collective), mesh8)
          out[f'{name}/{collective}/{block_size}'] = jax.value_and_grad(
              f, argnums=(0, 1))(x, y)
      return out

    ref = jax.jit(all_refs)(x, y)
    out = jax.jit(all_sharded)(x, y)
    for key, value in out.items():
      assert_close(value, ref[key.split('/')[0]], key)
    return f'{len(out)} combinations'

  def run_train(steps, mesh, workdir_name, loss_name='dense', **overrides):
    config = fx.train_config(num_steps=steps, **overrides)
    return train.train(config, fx.contrastive_task(loss_name, mesh),
                       os.path.join(workdir, workdir_name), mesh=mesh,
                       verbose=False)

  @check
  def train_step_8_vs_1():
    """One step of the train loop: 8 devices == 1 device (dense and ring loss)."""
    config = fx.train_config()
    tx = train.make_optimizer(config)
    out = {}
    for name, mesh in (('dense', mesh1), ('dense', mesh8), ('ring', mesh8)):
      task = fx.contrastive_task(name, mesh)
      rep = parallel.replicated(mesh)
      state = jax.device_put(train.init_state(task, config, tx), rep)
      step = train.make_train_chunk(task, tx, mesh, 1)
      state, metrics = step(state, jax.device_put(task.data, rep))
      assert len(jax.tree.leaves(state.params)[0].sharding.device_set) == \
          mesh.size
      out[f'{name}/{mesh.size}'] = (state.params, metrics)
    assert_close(out['dense/8'], out['dense/1'], 'dense loss, 8 vs 1 devices')
    assert_close(out['ring/8'], out['dense/1'], 'ring loss on 8 vs dense on 1')
    return f"infonce={float(out['dense/8'][1]['infonce'][0]):.5f}"

  @check
  def batch_not_divisible_is_an_error():
    try:
      run_train(2, mesh8, 'bad_batch', batch_size=12)
    except ValueError as e:
      assert 'divisible by the number of devices' in str(e), str(e)
      return str(e)
    raise AssertionError('batch_size=12 on 8 devices did not raise')

  @check
  def checkpoint_across_device_counts():
    """Written on 8 devices, resumed on 1, and vice versa == uninterrupted run."""
    full = run_train(4, mesh8, 'full8')
    run_train(2, mesh8, 'cut8')
    # Kept for the parent, a process with 1 device: an 8-device checkpoint at
    # step 2 and the parameters expected at step 4.
    shutil.copytree(os.path.join(workdir, 'cut8'), os.path.join(workdir, 'for_parent'))
    resumed_on_1 = run_train(4, mesh1, 'cut8')
    assert len(jax.tree.leaves(resumed_on_1.params)[0].sharding.device_set) == 1
    run_train(2, mesh1, 'cut1')
    resumed_on_8 = run_train(4, mesh8, 'cut1')
    assert int(resumed_on_1.step) == int(resumed_on_8.step) == 4
    assert_close(resumed_on_1.params, full.params, '8 -> 1')
    assert_close(resumed_on_8.params, full.params, '1 -> 8')
    np.savez(os.path.join(workdir, 'expected_params.npz'),
             **fx.flatten(full.params))

  @check
  def large_batch_experiment_tiny():
    """experiments/large_batch.py at toy sizes, data-parallel on 8 devices."""
    from experiments import large_batch  # pylint: disable=g-import-not-at-top
    from experiments.configs import large_batch as large_batch_config  # pylint: disable=g-import-not-at-top
    config = large_batch_config.get_config('quick')
    config.mi_levels = (6.0,)
    config.dim = 4
    config.batch_sizes = (16, 64)
    config.max_train_batch = 16
    config.hidden = (8,)
    config.embed_dim = 4
    config.streaming_threshold = 16    # K = 64: streaming ring over 8 devices
    config.block_size = 5              # does not divide the 8 rows per device
    config.num_steps = 4
    config.log_every = config.eval_every = config.checkpoint_every = 4
    config.eval_pairs = 128
    config.max_eval_batches = 2
    out = os.path.join(workdir, 'large_batch')
    results = large_batch.run(config, out)
    got = sorted((r['curve'], r['k']) for r in results)
    assert got == [('fixed', 16), ('fixed', 64), ('optimal', 16),
                   ('optimal', 64), ('trained', 16)], got
    for r in results:
      assert r['estimate'] <= np.log(r['k']) + 1e-4, r
      assert r['method'].startswith('streaming' if r['k'] == 64 else 'dense'), r
    optimal = {r['k']: r['estimate'] for r in results if r['curve'] == 'optimal'}
    assert optimal[64] > optimal[16] > 2.0, optimal     # the ceiling lifts
    for name in ('results.jsonl', 'summary.md', 'summary.csv', 'large_batch.png'):
      assert os.path.isfile(os.path.join(out, name)), name
    assert len(large_batch.run(config, out)) == len(results)   # all cached
    return f'optimal critic: {optimal}'


  # ------------------------------------------- experiments on 8 devices --
  # Each ported experiment's smallest config through train.train (or, for
  # estimators, estimate_mi) on the 8-device mesh; bounds, dgi and
  # estimate_mi also against 1 device.

  def data_dir():
    from infomax_jax import graphs  # pylint: disable=g-import-not-at-top
    path = os.environ.get(graphs.DATA_DIR_ENV)
    if not path:
      raise Skip(f'{graphs.DATA_DIR_ENV} is unset')
    return path

  @check
  def bounds_experiment_8_vs_1():
    """experiments/bounds.py (tiny): 8 devices == 1 device, every step."""
    from experiments import bounds as experiment  # pylint: disable=g-import-not-at-top
    from experiments.configs import bounds as bounds_config  # pylint: disable=g-import-not-at-top
    config = bounds_config.get_config('quick')
    config.critics, config.estimators = ('separable',), ('mine',)
    config.levels, config.steps_per_level = (1.0, 3.0), 10
    config.summary_window, config.summary_batches = 10, 5
    config.batch_size, config.dim, config.hidden = 16, 3, (16,)
    config.embed_dim = 4
    out = os.path.join(workdir, 'bounds')
    summary = experiment.run(config, out)        # default mesh: 8 devices
    assert len(summary) == 2, summary
    runs = experiment.load_metrics(os.path.join(out, 'metrics.csv'), config)
    assert sorted(runs) == [('separable', 'mine')], runs
    # MINE: its moving average is carried in aux with the per-step curves.
    est1, obj1, _ = experiment.train_combo(
        'separable', 'mine', config, os.path.join(workdir, 'bounds1'), mesh1)
    assert_close((est1, obj1), (runs['separable', 'mine']['estimate'],
                                runs['separable', 'mine']['objective']),
                 'bounds mine, 8 vs 1 devices', rtol=1e-4, atol=1e-4)
    return ' '.join(f'{r["estimator"]}@{r["true_mi"]:g}={r["mean"]:.3f}'
                    for r in summary)

  @check
  def dgi_8_vs_1():
    """DGI (graphs.train_dgi): node blocks over 8 devices == 1 device."""
    from infomax_jax import graphs  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(0)
    n, f = 37, 11       # 37 nodes: padded to 40, blocks of 5
    dense = (rng.random((n, f)) < 0.3).astype(np.float32)
    r, c = np.nonzero(dense)
    data = graphs.Planetoid(
        'toy', graphs.sparse_from_coo(r, c, dense[r, c], (n, f)),
        np.zeros(n, np.int32),
        graphs.undirected_edges(rng.integers(0, n, (60, 2)), n),
        np.arange(4), np.arange(4, 8), np.arange(8, 16), 2)
    kw = dict(hidden=8, max_epochs=8, patience=3, log_every=4, verbose=False)
    r8 = graphs.train_dgi(data, mesh=mesh8, workdir=os.path.join(workdir, 'dgi8'), **kw)
    r1 = graphs.train_dgi(data, mesh=mesh1, workdir=os.path.join(workdir, 'dgi1'), **kw)
    assert (r8.best_epoch, len(r8.losses)) == (r1.best_epoch, len(r1.losses))
    assert_close((r8.losses, r8.params), (r1.losses, r1.params),
                 'DGI 8 vs 1 devices', rtol=1e-4, atol=1e-5)
    return f'{len(r8.losses)} epochs, best {r8.best_epoch}'

  @check
  def dgi_experiment_tiny():
    """experiments/dgi.py :tiny (Cora) on 8 devices."""
    from experiments import dgi  # pylint: disable=g-import-not-at-top
    from experiments.configs import dgi as dgi_config  # pylint: disable=g-import-not-at-top
    config = dgi_config.get_config('tiny')
    config.data_dir = data_dir()
    (row,) = dgi.run(config, os.path.join(workdir, 'dgi_tiny'))
    assert row['dataset'] == 'cora' and float(row['acc_mean']) > 0, row
    return f'cora tiny: {row["acc_mean"]} %'

  @check
  def infograph_experiment_tiny():
    """experiments/infograph.py :tiny: graph batches split over 8 devices."""
    from experiments import infograph  # pylint: disable=g-import-not-at-top
    from experiments.configs import infograph as infograph_config  # pylint: disable=g-import-not-at-top
    config = infograph_config.get_config('tiny')
    config.data_dir = data_dir()
    (summary,) = infograph.run(config, os.path.join(workdir, 'infograph_tiny'))
    assert summary['seeds'] == 1 and float(summary['acc_mean']) > 50, summary
    return f'MUTAG tiny: {summary["acc_mean"]} %'

  @check
  def estimators_8_vs_1_and_experiment_tiny():
    """estimate_mi: batches sharded over 8 devices == 1 device; estimators.py."""
    from experiments import estimators  # pylint: disable=g-import-not-at-top
    from experiments.configs import estimators as estimators_config  # pylint: disable=g-import-not-at-top
    from infomax_jax.estimate import estimate_mi  # pylint: disable=g-import-not-at-top
    config = estimators_config.get_config('quick')
    config.tasks, config.bounds = ('normal-1x1-0.75',), ('infonce',)
    config.critics, config.seeds, config.num_samples = ('concat',), (0,), 400
    config.estimator.batch_size, config.estimator.steps = 64, 60
    config.estimator.eval_every = 20
    rows = estimators.run(config, os.path.join(workdir, 'estimators'))
    (row,) = rows.values()
    assert np.isfinite(row['estimate']) and row['true_mi'] > 0.4, row
    # Same shapes and settings as the experiment's: the 8-device fit reuses its
    # compiled program.
    x, y = fx.gaussian_pairs(3, 400, 1, 0.7)
    kw = dict(batch_size=64, steps=60, eval_every=20)
    e8 = estimate_mi(x, y, mesh=mesh8, **kw)
    e1 = estimate_mi(x, y, mesh=mesh1, **kw)
    assert_close((e8.train_curve, e8.test_curve, e8.mi),
                 (e1.train_curve, e1.test_curve, e1.mi),
                 'estimate_mi 8 vs 1 devices', rtol=1e-3, atol=1e-3)
    return (f'estimators {row["estimate"]:.3f} (true {row["true_mi"]:.3f}); '
            f'estimate_mi {e8.mi:.5f} (8) vs {e1.mi:.5f} (1)')

  failed = [r['check'] for r in RESULTS if not r['ok']]
  print(json.dumps({'summary': True, 'failed': failed}), flush=True)
  sys.exit(1 if failed else 0)


if __name__ == '__main__':
  main()
