"""Tests of infomax_jax.cpc (Contrastive Predictive Coding) and experiments/cpc.py."""

import csv
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from infomax_jax import bounds
from infomax_jax import cpc
from infomax_jax import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ inputs --

def test_patch_grid_matches_slices_of_the_padded_image():
  images = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
  grid = np.asarray(cpc.patch_grid(jnp.asarray(images)))
  assert grid.shape == (2, 7, 7, 8, 8, 1)    # (28 + 4 - 8) / 4 + 1 = 7
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
  for b, r, s in ((0, 0, 0), (1, 3, 5), (0, 6, 6), (1, 6, 0)):
    np.testing.assert_array_equal(grid[b, r, s, :, :, 0],
                                  padded[b, 4 * r:4 * r + 8, 4 * s:4 * s + 8])
  # The corner patch holds two rows / columns of padding.
  assert not grid[0, 0, 0, :2].any() and not grid[0, 0, 0, :, :2].any()


def test_grid_size_rejects_a_stride_that_does_not_tile():
  assert cpc.grid_size(28, 8, 4, 2) == 7
  with pytest.raises(ValueError, match='do not tile'):
    cpc.grid_size(28, 8, 5, 2)


def test_pairs_align_prediction_at_t_with_latent_at_t_plus_k():
  b, t, w, d = 2, 5, 3, 4
  # Entry value encodes its position, so the alignment can be read back.
  pos = np.arange(b * t * w, dtype=np.float32).reshape(b, t, w, 1)
  latents = jnp.asarray(np.broadcast_to(pos, (b, t, w, d)))
  queries, targets = cpc.pairs(latents, latents, 2)
  assert queries.shape == targets.shape == (b * (t - 2) * w, d)
  # Row n: (image, row, column) of the query and the same column two rows down.
  np.testing.assert_array_equal(np.asarray(targets[:, 0] - queries[:, 0]), 2 * w)
  # Image-major order: the first (t - k) w rows are image 0.
  assert float(queries[(t - 2) * w - 1, 0]) < t * w <= float(queries[(t - 2) * w, 0])
  with pytest.raises(ValueError, match=r'offset must be in \[1, T\) = \[1, 5\)'):
    cpc.pairs(latents, latents, 5)


# --------------------------------------------------------------- causality --

def _perturbation_dependence(apply, x, axes):
  """|f(x + e_p) - f(x)| for a unit bump at every position p of ``axes`` of x
  (one batched forward pass): dependence of every output on every position."""
  shape = x.shape[1:1 + len(axes)]
  bumps = np.zeros((int(np.prod(shape)),) + x.shape[1:], np.float32)
  for n, p in enumerate(np.ndindex(*shape)):
    bumps[(n,) + p] = 1.0
  out = apply(x)
  moved = apply(x + jnp.asarray(bumps))
  # (positions, *out) -> (*out[1:], *positions): out[t, j] against position p.
  diff = np.abs(np.asarray(moved - out))
  diff = diff.reshape((len(bumps),) + diff.shape[1:])
  return np.moveaxis(diff, 0, -1).reshape(diff.shape[1:] + shape)


@pytest.mark.parametrize('name', sorted(cpc.CONTEXTS))
def test_context_at_row_t_depends_on_rows_up_to_t_only(name):
  t_len, width = 5, 4
  z = jax.random.normal(jax.random.PRNGKey(1), (1, t_len, width, 3))
  module = cpc.CONTEXTS[name](8)
  params = module.init(jax.random.PRNGKey(0), z)
  # Bump every (row s, column i) of z by 1 on all of its 3 features.
  dep = _perturbation_dependence(jax.jit(lambda u: module.apply(params, u)),
                                 z, axes=(1, 2))          # (T, W, h, T, W)
  dep = dep.sum(axis=2)
  for t in range(t_len):
    # Exactly unchanged by every later row ...
    assert not dep[t, :, t + 1:].any(), f'{name}: c_{t} depends on a later row'
    # ... and changed by every (row <= t, column): the whole past is seen
    # (3 causal 3x3 layers reach 6 rows up and 3 columns aside).
    assert (dep[t, :, :t + 1] > 0).all(), f'{name}: c_{t} misses part of its past'


@pytest.mark.slow
def test_image_context_ignores_pixels_below_its_patch_row():
  config = _image_config(mlp=True)
  model = cpc.make_model(config)
  x = jax.random.uniform(jax.random.PRNGKey(2), (1, 28, 28))
  params = model.init(jax.random.PRNGKey(3), x)
  # Bump one whole image row at a time.
  context = jax.jit(lambda img: model.apply(params, img)['context'])
  out = context(x)
  bumps = jnp.asarray(np.eye(28, dtype=np.float32)[:, :, None] * np.ones((1, 1, 28)))
  dep = np.abs(np.asarray(context(x + bumps) - out)).sum(axis=(2, 3)).T   # (7, 28)
  for t in range(7):
    # Grid row t covers padded rows 4t..4t+7, i.e. image rows 4t-2..4t+5.
    last = min(4 * t + 5, 27)
    assert not dep[t, last + 1:].any(), f'c_{t} sees image rows below {last}'
    assert dep[t, last] > 0 and dep[t, 0] > 0


# ------------------------------------------------------------ registry etc. --

def _image_config(**overrides):
  """The tiny experiment config; ``mlp=True``: a patch MLP (cheap to compile)."""
  from experiments.configs import cpc as cpc_config
  config = cpc_config.get_config('tiny')
  if overrides.pop('mlp', False):
    config.cpc_encoder = 'patch_mlp'
    config.encoder_kwargs = ml_collections.ConfigDict(dict(hidden=(16,)))
  config.update(overrides)
  return config


def test_unknown_context_lists_the_valid_ones():
  with pytest.raises(ValueError, match='valid CPC context networks are: gru, masked_conv'):
    cpc.make_model(_image_config(context='pixelcnn'))
  with pytest.raises(ValueError, match="form 'rows' needs encoder step_mlp"):
    cpc.make_model(_image_config(form='rows'))


@pytest.mark.slow
def test_sharded_infonce_equals_the_dense_scores_on_one_device():
  config = _image_config(mlp=True)
  model = cpc.make_model(config)
  x = jax.random.uniform(jax.random.PRNGKey(4), (4, 28, 28))
  out = jax.jit(model.apply)(jax.jit(model.init)(jax.random.PRNGKey(5), x), x)
  mesh = parallel.make_mesh(jax.devices()[:1])
  dense, dense_metrics = jax.jit(lambda o: cpc.objective(o, model.offsets))(out)
  sharded, metrics = jax.jit(lambda o: cpc.sharded_infonce(
      o, model.offsets, mesh, block_size=16))(out)
  np.testing.assert_allclose(sharded, dense, rtol=1e-5, atol=1e-6)
  for k in model.offsets:
    # N = 4 images x (7 - k) rows x 7 columns candidates per query.
    assert float(metrics[f'log_n_k{k}']) == pytest.approx(math.log(4 * (7 - k) * 7))
    np.testing.assert_allclose(metrics[f'infonce_k{k}'], dense_metrics[f'infonce_k{k}'],
                               rtol=1e-5, atol=1e-6)
  # Any scores-only bound of the registry: JSD reports NWJ of its critic
  # (bounds.REGISTRY['jsd']), here on the k = 1 scores.
  jsd_metrics = jax.jit(lambda o: cpc.objective(o, model.offsets, bound='jsd')[1])(out)
  s = cpc.scores(out['predictions'][0], out['latents'], 1)
  assert float(jsd_metrics['jsd_k1']) == pytest.approx(
      float(bounds.get('jsd').estimate(s)), rel=1e-5)
  with pytest.raises(ValueError, match="negatives='sharded' computes InfoNCE only"):
    cpc.make_loss(model, _image_config(bound='jsd', negatives='sharded'))


# ------------------------------------------------ learning a known sequence --

VOCAB, STEPS, BATCH, SLOPES = 11, 8, 32, (1, 2, 3)


def _sequences(key, shuffled):
  """x_t = (s + a t) mod 11, s uniform, a uniform on {1, 2, 3} (per sequence);
  ``shuffled``: the same tokens permuted over the whole batch (no structure)."""
  k_s, k_a, k_p = jax.random.split(key, 3)
  start = jax.random.randint(k_s, (BATCH, 1), 0, VOCAB)
  slope = jnp.asarray(SLOPES)[jax.random.randint(k_a, (BATCH, 1), 0, len(SLOPES))]
  tokens = (start + slope * jnp.arange(STEPS)) % VOCAB
  if shuffled:
    tokens = jax.random.permutation(k_p, tokens.ravel()).reshape(tokens.shape)
  return tokens


def _oracle_infonce(tokens: np.ndarray, k: int) -> float:
  """InfoNCE of the true density ratio p(x_{t+k} | x_<=t) / p(x_{t+k}) on the
  batch's (N, N) candidates, from the generating process (numpy only): from
  t >= 1 the slope is known and x_{t+k} certain; at t = 0 three values are
  equally likely."""
  queries = [(b, t) for b in range(tokens.shape[0]) for t in range(STEPS - k)]
  targets = np.array([tokens[b, t + k] for b, t in queries])
  value = 0.0
  for n, (b, t) in enumerate(queries):
    if t == 0:
      support = {(tokens[b, 0] + a * k) % VOCAB for a in SLOPES}
    else:
      support = {(tokens[b, t] + (tokens[b, 1] - tokens[b, 0]) * k) % VOCAB}
    # Ratio 1/|support| / (1/V) on the support, 0 elsewhere: the positive's
    # share of the row's total is 1 / #(candidates in the support).
    value += -math.log(np.isin(targets, list(support)).sum())
  return math.log(len(queries)) + value / len(queries)


def _train_on_sequences(shuffled: bool, steps: int = 400):
  model = cpc.CPC(cpc.StepEncoder(16, (32,)), cpc.GRUContext(32), offsets=(1, 2),
                  form='rows')
  onehot = lambda tokens: jax.nn.one_hot(tokens, VOCAB)
  params = model.init(jax.random.PRNGKey(0), onehot(_sequences(jax.random.PRNGKey(1),
                                                               shuffled)))
  tx = optax.adam(3e-3)

  def loss(p, key):
    out = model.apply(p, onehot(_sequences(key, shuffled)))
    return -cpc.objective(out, model.offsets)[0]

  def step(carry, key):
    p, opt = carry
    grads = jax.grad(loss)(p, key)
    updates, opt = tx.update(grads, opt, p)
    return (optax.apply_updates(p, updates), opt), None

  keys = jax.random.split(jax.random.PRNGKey(2), steps)
  (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, keys))((params, tx.init(params)))
  # Held-out batches (keys never used in training).
  estimates = {k: [] for k in model.offsets}
  oracles = {k: [] for k in model.offsets}
  for i in range(4):
    tokens = _sequences(jax.random.PRNGKey(1000 + i), shuffled)
    metrics = cpc.objective(model.apply(params, onehot(tokens)), model.offsets)[1]
    for k in model.offsets:
      estimates[k].append(float(metrics[f'infonce_k{k}']))
      oracles[k].append(_oracle_infonce(np.asarray(tokens), k))
  return ({k: np.mean(v) for k, v in estimates.items()},
          {k: np.mean(v) for k, v in oracles.items()})


@pytest.mark.slow
def test_cpc_learns_a_predictable_sequence_and_not_a_shuffled_one():
  learned, oracle = _train_on_sequences(shuffled=False)
  learned_shuffled, _ = _train_on_sequences(shuffled=True)
  for k in (1, 2):
    log_n = math.log(BATCH * (STEPS - k))
    # The best critic gets close to log V (its ceiling with 11 symbols) ...
    assert math.log(VOCAB) - 0.35 < oracle[k] < math.log(VOCAB) < log_n
    # ... and the trained CPC comes within 10 % of it on held-out batches.
    assert 0.9 * oracle[k] < learned[k] <= oracle[k] + 0.05, (k, learned, oracle)
    # Tokens shuffled over the batch are (nearly) independent of their past:
    # I = 0, and the trained model stays near 0 nats (far below the above).
    assert abs(learned_shuffled[k]) < 0.1 and learned[k] > 2.0
  # Beyond memorising x_t: from t >= 1 the slope (two steps of context) makes
  # x_{t+k} certain; a model blind to the slope would stay below
  # log V - (log 3 averaged over the rows), which the learned value exceeds.
  blind = math.log(VOCAB) - math.log(3)
  assert learned[1] > blind + 0.5 and learned[2] > blind + 0.5


# ---------------------------------------------------------- global negatives --

@pytest.mark.slow
def test_sharded_and_dense_losses_agree_over_four_devices():
  script = textwrap.dedent('''
      import jax, jax.numpy as jnp, numpy as np
      from infomax_jax import cpc, parallel
      from experiments.configs import cpc as cfg
      config = cfg.get_config('tiny')
      model = cpc.make_model(config)
      x = jax.random.uniform(jax.random.PRNGKey(0), (8, 28, 28))
      params = model.init(jax.random.PRNGKey(1), x)['params']
      mesh = parallel.make_mesh()
      assert mesh.shape['data'] == 4
      x = jax.device_put(x, parallel.batch_sharded(mesh))
      def value(negatives, collective='all_gather'):
        config.negatives, config.collective = negatives, collective
        loss = cpc.make_loss(model, config, mesh)
        f = jax.jit(jax.value_and_grad(lambda p: loss(p, (), {'x': x}, None)[0]))
        return f(params)
      (d, gd), (s, gs), (r, gr) = value('dense'), value('sharded'), value('sharded', 'ring')
      # The loss is a mean of terms of size log N ~ 6 (near 0 at init): a
      # few float32 ulps of log N absolute, not relative to the sum.
      np.testing.assert_allclose(s, d, rtol=0, atol=2e-6)
      np.testing.assert_allclose(r, d, rtol=0, atol=2e-6)
      for a, b in zip(jax.tree.leaves(gd) * 2, jax.tree.leaves(gs) + jax.tree.leaves(gr)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))
      print('OK', float(d))
  ''')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0 and 'OK' in proc.stdout, proc.stdout + proc.stderr


# --------------------------------------------------------------- experiment --

@pytest.mark.slow
def test_cpc_tiny_experiment_writes_tables_and_resumes(mnist_dir, tmp_path):
  from experiments import cpc as cpc_experiment
  config = _image_config(data_dir=str(mnist_dir), run_names=('control', 'cpc'))
  rows = cpc_experiment.run(config, str(tmp_path))
  with open(tmp_path / 'cpc_table.csv', newline='') as f:
    table = list(csv.DictReader(f))
  assert [(r['run'], r['model'], int(r['steps'])) for r in table] == [
      ('control', 'random init', 0), ('cpc', 'CPC (7×7 patches)', 4)]
  for r in table:
    for k in (1, 2):
      # 16 images x (7 - k) rows x 7 columns of candidates.
      log_n = math.log(16 * (7 - k) * 7)
      assert float(r[f'log_n_k{k}']) == pytest.approx(log_n, abs=1e-4)
      assert -1.0 < float(r[f'infonce_test_k{k}']) <= log_n
    # Random patch features of MNIST are linearly informative: far above
    # the 10 % of chance even on 256 images.
    assert float(r['z_grid_linear']) > 0.3
  assert float(table[0]['train_seconds']) == 0.0 < float(table[1]['train_seconds'])
  assert '### mnist' in (tmp_path / 'cpc_table.md').read_text()
  assert (tmp_path / 'cpc.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  # A rerun re-uses the finished runs: the same numbers, nothing retrained.
  again = cpc_experiment.run(config, str(tmp_path))
  assert [r['z_grid_linear'] for r in again] == [r['z_grid_linear'] for r in rows]
