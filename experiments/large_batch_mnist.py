r"""Two-view MNIST at large batch: does a tighter InfoNCE bound give a better representation?

  python -m experiments.large_batch_mnist \
      --config=experiments/configs/large_batch_mnist.py:cpu --workdir=runs/large_batch_mnist_cpu

For every K of ``config.batch_sizes`` the Fig. 3 two-view model (MLP encoders,
bilinear critic f = g1(x)^T W g2(y)) is trained by ``infomax_jax.train`` with
minus InfoNCE at batch K, computed as the streaming InfoNCE of the embeddings
(g1(x) W, g2(y)) with both encoders gradient-cached
(``infomax_jax.gradcache``): the step's memory does not grow with the
encoders' activations, so K can be the whole training set. Each run ends with
I_NCE at K on a fixed training batch, I_NCE on a test batch, and the linear
probe accuracy of g1 on the clean top halves.

Writes to ``--workdir``: ``train/k{K}/`` (metrics, timing, checkpoints; a rerun
resumes), ``results.jsonl`` (one line per K), ``summary.md`` / ``summary.csv``.
"""

import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections

from infomax_jax import evaluation
from infomax_jax import gradcache
from infomax_jax import runs
from infomax_jax import train
from infomax_jax import tschannen
from infomax_jax import twoview
from infomax_jax.bounds import streaming

RUN_FIELDS = ('seed', 'optimizer', 'learning_rate', 'log_every', 'num_steps',
              'eval_every', 'checkpoint_every', 'noise_std', 'embed_chunk',
              'block_size', 'matmul_dtype')
FIELDS = ('k', 'log_k', 'infonce_train', 'gap', 'test_k', 'infonce_test',
          'probe_accuracy', 'train_seconds')


def infonce_of(config, model: twoview.TwoView, k: int):
  """``(params, x, y) -> I_NCE``: streamed, with gradient-cached encoders."""
  chunk = config.embed_chunk or None
  block = config.block_size if k > config.block_size else None    # dense below

  def estimate(params, x, y):
    gx = gradcache.encode(model.encoder_x, params['encoder_x'], x, chunk)
    gy = gradcache.encode(model.encoder_y, params['encoder_y'], y, chunk)
    return streaming.infonce(gx @ params['critic']['kernel'], gy, block_size=block,
                             matmul_dtype=config.matmul_dtype)
  return estimate


def train_at(config, k: int, train_views, test_views, workdir: str) -> dict:
  """Trains (or resumes) the model at batch k; returns its result row."""
  run_config = runs.override(config, batch_size=k)
  model = twoview.make_model(run_config)
  estimate = infonce_of(run_config, model, k)
  dim = train_views.images.shape[1] * train_views.images.shape[2] // 2

  def init(key):
    x = jnp.zeros((2, dim), jnp.float32)
    return model.init(key, x, x)['params'], ()

  def loss(params, aux, batch, key):
    del key
    value = estimate(params, batch['x'], batch['y'])
    return -value, ({'infonce': value}, aux)

  images = jnp.asarray(train_views.images)
  task = train.Task(init=init, sample=twoview.sample_views(k, config.noise_std),
                    loss=loss, data={'images': images})
  run_dir = os.path.join(workdir, 'train', f'k{k}')
  state = train.train(ml_collections.ConfigDict(
      {'batch_size': k, 'keep_checkpoints': 1, **{f: config[f] for f in RUN_FIELDS}}),
      task, run_dir)
  params = state.params

  # I_NCE at K on a fixed training batch, and on a test batch.
  test_k = min(k, config.test_batch, test_views.images.shape[0])
  key_train, key_test = (evaluation.eval_key(config.seed, p) for p in ('train', 'test'))
  value_at = lambda kk: jax.jit(lambda p, data, key: estimate(
      p, **twoview.sample_views(kk, config.noise_std)(data, key)))
  infonce_train = float(value_at(k)(params, {'images': images}, key_train))
  infonce_test = float(value_at(test_k)(
      params, {'images': jnp.asarray(test_views.images)}, key_test))
  encode = twoview.make_encode(lambda p, x: model.apply(
      {'params': p}, x, method=twoview.TwoView.encode_x))
  probe = evaluation.linear_probe(
      encode(params, train_views.tops()), train_views.labels,
      encode(params, test_views.tops()), test_views.labels, steps=config.probe_steps)
  return {'k': k, 'log_k': math.log(k), 'infonce_train': infonce_train,
          'gap': math.log(k) - infonce_train, 'test_k': test_k,
          'infonce_test': infonce_test, 'probe_accuracy': float(probe['accuracy']),
          'train_seconds': runs.seconds(run_dir)}


def summary_markdown(results: list[dict], config) -> str:
  """One row per K: the bound, its ceiling log K and the probe accuracy."""
  rows = sorted(results, key=lambda r: r['k'])
  return '\n'.join([
      f'Two-view MNIST, MLP encoders {tuple(config.encoder_kwargs.features)}, bilinear '
      f'critic, InfoNCE, {config.num_steps} steps at every K (GradCache chunk '
      f'{config.embed_chunk}, streaming block {config.block_size}, '
      f'{config.matmul_dtype} matmuls). I_NCE at K: on a fixed training batch of K; '
      'test: on a test batch of min(K, test_batch).', '',
      runs.markdown_table(
          rows, list(FIELDS),
          headers=['K', 'log K', 'I_NCE at K (train)', 'log K - I_NCE', 'test K',
                   'I_NCE (test)', 'probe accuracy', 'training (s)'],
          formats={'log_k': '.2f', 'infonce_train': '.3f', 'gap': '.3f',
                   'infonce_test': '.3f', 'probe_accuracy': '.4f',
                   'train_seconds': '.0f'})])


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Trains at every K of ``config.batch_sizes`` not yet in ``results.jsonl``."""
  if config.critic != 'bilinear' or config.bound != 'infonce':
    raise ValueError(f"large_batch_mnist: needs critic='bilinear' and bound='infonce' "
                     f'(the streamed inner-product form), got {config.critic!r} and '
                     f'{config.bound!r}')
  train_views, test_views = tschannen.load_views(config)
  n = train_views.images.shape[0]
  if max(config.batch_sizes) > n:
    raise ValueError(f'large_batch_mnist: batch sizes {tuple(config.batch_sizes)} exceed '
                     f'the {n} training images')
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, 'results.jsonl')
  results = runs.read_jsonl(path)
  for k in config.batch_sizes:
    if any(r['k'] == k for r in results):
      continue
    row = train_at(config, k, train_views, test_views, workdir)
    results.append(row)
    print(f'K={k:<6d} I_NCE {row["infonce_train"]:.3f} (log K {row["log_k"]:.2f}) '
          f'test {row["infonce_test"]:.3f} probe {row["probe_accuracy"]:.4f}', flush=True)
    with open(path, 'a') as f:
      f.write(json.dumps(row) + '\n')
  table = summary_markdown(results, config)
  runs.write_text(os.path.join(workdir, 'summary.md'), table + '\n')
  runs.write_csv(os.path.join(workdir, 'summary.csv'), FIELDS, results)
  print(table, flush=True)
  return results


if __name__ == '__main__':
  runs.main(run, __file__)
