"""Deep InfoMax (Hjelm et al. 2019, Table 1): DIM(G) / DIM(L), estimators, prior.

  python -m experiments.dim --config=experiments/configs/dim.py:cpu \
      --workdir=runs/dim_cpu

For every data set of ``config.datasets`` and every run of ``config.runs``
(a name -> overrides of the base config: alpha/beta/gamma, estimator, ...),
trains ``infomax_jax.dim`` with ``infomax_jax.train`` (data-parallel over all
devices, checkpoints, exact resume) in ``--workdir/<dataset>/<run>``. The
'control' run has ``num_steps = 0``: the same encoder at its random
initialisation. Every evaluation fits a linear probe (L-BFGS) and a probe
with one hidden layer of 200 units (Adam) on the conv / fc / Y features of
``config.probe_train_examples`` train images and reports test accuracy, plus
how far σ(Y) is from the prior U[0,1]^64 (mean per-dimension W1 distance,
the joint energy distance, a classifier two-sample test, and the accuracy of
the trained discriminator when γ > 0) and the test InfoNCE of the
objective's scores.

Outputs in --workdir: ``dim_table.csv``, ``dim_table.md`` (one table per data
set, Table 1 layout), ``dim.png`` (conv-feature accuracy per run) and
``dim_prior.png`` (W1 of σ(Y) to the prior during training).
A rerun resumes unfinished runs and re-uses finished ones;
``--config.skip_unfinished=True`` only tabulates the finished ones.
"""

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from experiments import csvio
from experiments.critics import override
from infomax_jax import runs
from infomax_jax import data as data_lib
from infomax_jax import dim as dim_lib
from infomax_jax import evaluation
from infomax_jax import train as train_lib

FEATURES = ('conv', 'fc', 'y')
PROBES = ('linear', 'mlp')
TABLE_FIELDS = (
    ['dataset', 'run', 'model', 'estimator', 'gamma', 'steps']
    + [f'{f}_{p}' for f in FEATURES for p in PROBES]
    + ['w1_prior', 'energy_prior', 'c2st_accuracy', 'discriminator_accuracy',
       'infonce_test', 'train_seconds'])


def load_split(config, dataset: str, split: str, limit: int = 0):
  """(uint8 images, int labels) of one split; the first ``limit`` if > 0."""
  images, labels = data_lib.load(dataset, split,
                                 data_dir=config.get('data_dir') or None,
                                 source=config.get('data_source', 'auto'))
  if limit:
    if limit > images.shape[0]:
      raise ValueError(f'{split} limit must be <= {images.shape[0]}, got {limit}')
    images, labels = images[:limit], labels[:limit]
  return images, labels


def _to_float(images):
  return images.astype(jnp.float32) / 255.0


def energy_to_prior(config, test_y) -> float:
  """Energy distance of σ(Y) of (at most ``energy_examples``) test images to
  as many fresh prior samples: joint over the 64 dimensions, and graded
  where the C2ST accuracy saturates at 1."""
  enc = jax.nn.sigmoid(test_y[:config.get('energy_examples', 2000)])
  prior = dim_lib.prior_sample(jax.random.PRNGKey(config.seed + 37), enc.shape)
  return float(evaluation.energy_distance(enc, prior))


def prior_distance(config, train_y, n_train: int, test_y) -> dict[str, float]:
  """How far σ(Y) is from the prior U[0,1]^d, independently of any training.

  * ``w1_prior``: mean per-dimension W1 distance of σ(Y_test) to U[0, 1];
  * ``energy_prior``: ``energy_to_prior``;
  * ``c2st_accuracy``: a classifier two-sample test: a fresh probe with one
    hidden layer (``mlp_probe`` settings of the config) learns to tell σ(Y)
    of train images from prior samples and is scored on σ(Y) of test images
    against new prior samples; 0.5 = indistinguishable, 1 = disjoint. With
    10000 samples a side it is a strict test: a GAN generator of U[0,1]^64
    from a 64-d Gaussian that is near the prior (W1 0.03) still scores 0.985
    (experiments.prior_game).
  """
  enc_train = jax.nn.sigmoid(train_y[:n_train])
  enc_test = jax.nn.sigmoid(test_y)
  k_train, k_test = jax.random.split(jax.random.PRNGKey(config.seed + 31))
  prior_train = dim_lib.prior_sample(k_train, enc_train.shape)
  prior_test = dim_lib.prior_sample(k_test, enc_test.shape)
  labels = lambda n: np.concatenate([np.zeros(n, np.int32), np.ones(n, np.int32)])
  c2st = evaluation.mlp_probe(
      jnp.concatenate([enc_train, prior_train]), labels(enc_train.shape[0]),
      jnp.concatenate([enc_test, prior_test]), labels(enc_test.shape[0]),
      hidden_size=config.mlp_probe_hidden, steps=config.mlp_probe_steps,
      batch_size=config.mlp_probe_batch,
      learning_rate=config.mlp_probe_learning_rate)['accuracy']
  return {'w1_prior': float(evaluation.wasserstein_to_uniform(enc_test)),
          'energy_prior': energy_to_prior(config, test_y),
          'c2st_accuracy': float(c2st)}


def make_task(config, train_data, test_data) -> train_lib.Task:
  """The ``train.Task`` of one DIM run on (images, labels) splits."""
  model = dim_lib.make_model(config)
  discriminator = dim_lib.PriorDiscriminator(tuple(config.discriminator_hidden))
  images, labels = train_data
  test_images, test_labels = test_data
  image_shape = images.shape[1:]
  num_y = config.encoder_kwargs.get('features', 64)

  def init(key):
    return dim_lib.init(model, discriminator, key, image_shape, num_y)

  def sample(data, key):
    idx = data_lib.batch_indices(key, data['images'].shape[0], config.batch_size)
    return {'x': _to_float(data['images'][idx])}

  n_probe = config.probe_train_examples or images.shape[0]
  probe_images = jnp.asarray(images[:n_probe])
  probe_labels = labels[:n_probe]
  test_images_dev = jnp.asarray(test_images)
  encode = lambda params, stats, x: dim_lib.encode_features(
      model, params['model'], stats, _to_float(x))

  @jax.jit
  def test_batch_infonce(params, stats, key):
    """The objective's InfoNCE terms on one random test batch."""
    variables = {'params': params['model'],
                 **({'batch_stats': stats} if stats else {})}
    idx = data_lib.batch_indices(key, test_images_dev.shape[0], config.batch_size)
    out = model.apply(variables, _to_float(test_images_dev[idx]), train=False)
    terms = dim_lib.mi_terms(out, estimator='infonce', alpha=config.alpha,
                             beta=config.beta)[0]
    return terms / (config.alpha + config.beta)

  def test_metrics(params, stats, key):
    """Mean test InfoNCE over ``eval_batches`` fixed batches (a host loop:
    XLA:CPU convolutions are slow inside ``lax.map``)."""
    keys = jax.random.split(key, config.eval_batches)
    return float(np.mean([test_batch_infonce(params, stats, k) for k in keys]))

  def evaluate(params, stats, step):
    if step == 0 and config.num_steps > 0 and not config.eval_at_init:
      return {}
    record = {}
    train_feats = encode(params, stats, probe_images)
    test_feats = encode(params, stats, test_images_dev)
    for name in FEATURES:
      args = (train_feats[name], probe_labels, test_feats[name], test_labels)
      record[f'{name}_linear'] = evaluation.linear_probe(
          *args, steps=config.probe_steps)['accuracy']
      record[f'{name}_mlp'] = evaluation.mlp_probe(
          *args, hidden_size=config.mlp_probe_hidden,
          steps=config.mlp_probe_steps, batch_size=config.mlp_probe_batch,
          learning_rate=config.mlp_probe_learning_rate)['accuracy']
    record.update(prior_distance(config, train_feats['y'], probe_labels.shape[0],
                                 test_feats['y']))
    encoded = jax.nn.sigmoid(test_feats['y'])
    if config.gamma:
      prior = dim_lib.prior_sample(jax.random.PRNGKey(99), encoded.shape)
      d = lambda v: discriminator.apply({'params': params['disc']}, v)
      record['discriminator_accuracy'] = dim_lib.discriminator_accuracy(
          d(prior), d(encoded))
    record['infonce_test'] = test_metrics(params, stats, jax.random.PRNGKey(7))
    return record

  return train_lib.Task(
      init=init, sample=sample, data={'images': jnp.asarray(images)},
      evaluate=evaluate, update=dim_lib.make_update(model, discriminator, config),
      optimizer=_optimizer(config))


def _optimizer(config):
  """Two time-scale Adam when D's rate is scaled; else train.py's default."""
  scale = config.get('disc_learning_rate_scale', 1.0)
  if scale == 1.0:
    return None
  return dim_lib.make_optimizer(config.learning_rate, scale)


def _add_prior_distance(config, state, splits, run_dir, last) -> dict:
  """Adds the missing ``prior_distance`` fields of the final state to the
  last eval record (runs finished before a metric existed)."""
  model = dim_lib.make_model(config)
  (images, _), (test_images, _) = splits
  n = config.probe_train_examples or images.shape[0]
  encode = lambda x: dim_lib.encode_features(
      model, state.params['model'], state.aux, _to_float(jnp.asarray(x)))['y']
  test_y = encode(test_images)
  if 'c2st_accuracy' not in last:
    added = prior_distance(config, encode(images[:n]), n, test_y)
  else:
    added = {'energy_prior': energy_to_prior(config, test_y)}
  last = {**last, **added}
  records = runs.read_metrics(run_dir)
  index = max(i for i, r in enumerate(records) if r['split'] == 'eval'
              and r['step'] == last['step'])
  records[index] = last
  with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in records)
  return last


def describe(config) -> dict:
  """Table 1 labels of a run: model, estimator, γ."""
  if config.num_steps == 0:
    model = 'random init'
  else:
    model = {(True, False): 'DIM(G)', (False, True): 'DIM(L)',
             (True, True): 'DIM(G+L)'}[(bool(config.alpha), bool(config.beta))]
  return {'model': model,
          'estimator': '-' if config.num_steps == 0 else config.estimator,
          'gamma': config.gamma, 'steps': config.num_steps}


def _last_eval(run_dir: str) -> dict:
  """The last non-empty evaluation record of ``run_dir`` ({} if none)."""
  if not os.path.exists(os.path.join(run_dir, 'metrics.jsonl')):
    return {}
  records = [r for r in runs.read_metrics(run_dir, 'eval') if len(r) > 2]
  return records[-1] if records else {}


def run_one(config, dataset: str, name: str, workdir: str, splits) -> dict:
  """Trains (or resumes) one run; returns its table row."""
  run_dir = os.path.join(workdir, dataset, name)
  done_before = finished(run_dir, config.num_steps)
  t0 = time.time()
  if config.num_steps == 0 and 'energy_prior' in _last_eval(run_dir):
    model_state = None   # the control's one evaluation is complete: reuse it
  else:
    model_state = train_lib.train(config, make_task(config, *splits), run_dir)
  wall = time.time() - t0
  timing_path = os.path.join(run_dir, 'train_seconds.json')
  if done_before and os.path.exists(timing_path):   # keep the training's time
    with open(timing_path) as f:
      wall = json.load(f)['train_seconds']
  else:
    with open(timing_path, 'w') as f:
      json.dump({'train_seconds': wall}, f)
  last = _last_eval(run_dir)
  if 'energy_prior' not in last:   # a run finished before this metric existed
    last = _add_prior_distance(config, model_state, splits, run_dir, last)
  row = {'dataset': dataset, 'run': name, **describe(config),
         'train_seconds': round(wall, 1)}
  for field in TABLE_FIELDS:
    if field not in row:
      value = last.get(field, '')
      row[field] = round(value, 4) if isinstance(value, float) else value
  return row


def markdown(rows: list[dict]) -> str:
  """Table 1 style Markdown: one table per data set, accuracies in %."""
  lines = []
  for dataset in dict.fromkeys(r['dataset'] for r in rows):
    lines += [f'### {dataset}', '',
              '| run | model | estimator | γ | steps | conv lin | conv MLP | fc lin | '
              'fc MLP | Y lin | Y MLP | W1(σ(Y), U) | energy(σ(Y), U) | C2ST acc | '
              'D acc | I_NCE test | train s |',
              '|' + '---|' * 17]
    for r in (r for r in rows if r['dataset'] == dataset):
      acc = [f'{100 * float(r[f"{f}_{p}"]):.2f}' for f in FEATURES for p in PROBES]
      disc = r['discriminator_accuracy']
      lines.append(
          f'| {r["run"]} | {r["model"]} | {r["estimator"]} | {r["gamma"]} | {r["steps"]} | '
          + ' | '.join(acc)
          + f' | {float(r["w1_prior"]):.4f} | {float(r["energy_prior"]):.4f}'
          + f' | {float(r["c2st_accuracy"]):.3f} | '
          + (f'{float(disc):.3f}' if disc != '' else '-')
          + f' | {float(r["infonce_test"]):.3f} | {r["train_seconds"]} |')
    lines.append('')
  return '\n'.join(lines)


def plot(rows: list[dict], path: str) -> str:
  """Bar chart of linear-probe accuracy on conv features, per data set and run."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  datasets = list(dict.fromkeys(r['dataset'] for r in rows))
  fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4),
                           squeeze=False)
  for ax, dataset in zip(axes[0], datasets):
    sub = [r for r in rows if r['dataset'] == dataset]
    x = np.arange(len(sub))
    for k, (feat, color) in enumerate((('conv', 'C0'), ('fc', 'C1'), ('y', 'C2'))):
      ax.bar(x + (k - 1) * 0.27, [100 * float(r[f'{feat}_linear']) for r in sub],
             0.27, color=color, label=f'{feat} (linear)')
    ax.set_xticks(x, [r['run'] for r in sub], rotation=45, ha='right')
    lo = min(100 * float(r[f'{f}_linear']) for r in sub for f in FEATURES)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_ylabel('test accuracy (%)'); ax.set_title(dataset); ax.legend()
  fig.suptitle('Deep InfoMax: linear probes (Hjelm et al. Table 1 protocol)')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def plot_prior(workdir: str, rows: list[dict], path: str) -> str:
  """W1(σ(Y), U[0,1]) per training step of every trained run, per data set:
  how prior matching (γ > 0, with or without R1) moves σ(Y) against the
  MI term alone."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  datasets = list(dict.fromkeys(r['dataset'] for r in rows))
  fig, axes = plt.subplots(1, len(datasets), figsize=(7.5 * len(datasets), 4),
                           squeeze=False)
  colors = plt.get_cmap('tab20').colors
  for ax, dataset in zip(axes[0], datasets):
    trained = [r for r in rows if r['dataset'] == dataset and int(r['steps']) > 0]
    for k, r in enumerate(trained):
      train = runs.read_metrics(os.path.join(workdir, dataset, r['run']),
                                     'train')
      ax.plot([t['step'] for t in train], [t['w1_prior'] for t in train],
              label=f'{r["run"]} (γ={r["gamma"]})', color=colors[k % 20],
              linestyle='-' if float(r['gamma']) else ':')
    ax.set_xlabel('step'); ax.set_ylabel('W1(σ(Y), U[0,1]), train batches')
    ax.set_title(dataset)
    ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.0, 0.5))
  fig.suptitle('Deep InfoMax: distance of σ(Y) to the prior during training')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def finished(run_dir: str, num_steps: int) -> bool:
  """Whether ``run_dir`` holds the final evaluation of a ``num_steps`` run."""
  if not os.path.exists(os.path.join(run_dir, 'metrics.jsonl')):
    return False
  return any(r['step'] == num_steps and len(r) > 2
             for r in runs.read_metrics(run_dir, 'eval'))


def run_names(config) -> list[str]:
  """``config.run_names`` (validated), or every run with 'control' first."""
  names = list(config.get('run_names') or ())
  for name in names:
    if name not in config.runs:
      raise ValueError(f'config.run_names: unknown run {name!r}; valid: '
                       f'{sorted(config.runs.keys())}')
  if not names:
    names = sorted(config.runs.keys(), key=lambda n: (n != 'control', n))
  return names


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Every (data set, run) of ``config``; writes the tables and the figure."""
  os.makedirs(workdir, exist_ok=True)
  rows = []
  for dataset in config.datasets:
    splits = (load_split(config, dataset, 'train', config.train_examples),
              load_split(config, dataset, 'test', config.test_examples))
    for name in run_names(config):
      fields = config.runs[name]
      run_config = override(config, dataset=dataset, **fields.to_dict())
      if config.get('skip_unfinished') and not finished(
          os.path.join(workdir, dataset, name), run_config.num_steps):
        print(f'skipping {dataset}/{name}: not finished', flush=True)
        continue
      print(f'=== {dataset} / {name} ===', flush=True)
      rows.append(run_one(run_config, dataset, name, workdir, splits))
      print(f'{dataset}/{name}: {rows[-1]}', flush=True)
  csvio.write_csv(os.path.join(workdir, 'dim_table.csv'), TABLE_FIELDS, rows)
  table = markdown(rows)
  with open(os.path.join(workdir, 'dim_table.md'), 'w') as f:
    f.write(table)
  path = plot(rows, os.path.join(workdir, 'dim.png'))
  prior_path = plot_prior(workdir, rows, os.path.join(workdir, 'dim_prior.png'))
  print(table, flush=True)
  print(f'wrote {path} and {prior_path}', flush=True)
  return rows


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/dim.py', 'Experiment config.',
      lock_config=True)
  flags.DEFINE_string('workdir', 'runs/dim', 'Output folder.')
  app.run(main)
