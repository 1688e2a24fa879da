"""Adversarially trained bijective encoder (Tschannen et al. 2020, Fig. 1c).

  python -m experiments.adversarial --config=experiments/configs/adversarial.py:quick \
      --workdir=runs/adversarial_quick

One RealNVP encoder g (affine couplings) of MNIST top halves: it is a
bijection, so I(g(x); y) = I(x; y) is maximal whatever its parameters. A
linear classifier on g(x) learns the labels (Adam, ``classifier_learning_rate``)
while g is trained (Adam, ``encoder_learning_rate``) to push the classifier's
predictions toward uniform (cross-entropy to the uniform distribution). One
loop step is one classifier step during the first ``warmup_steps``, then
``classifier_steps`` classifier steps followed by one encoder step; the
classifier steps of a round share the round's batch (encoded once, which
keeps a round at ~4 flow passes instead of ~13). Every evaluation trains a
fresh linear probe (``evaluation.linear_probe``) on g(train tops) and reports its
test accuracy beside the pixel baselines. Writes metrics.jsonl,
baselines.json, checkpoints/ and adversarial.png to --workdir; rerunning the
same command resumes from the last checkpoint.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from infomax_jax import data as data_lib
from infomax_jax import encoders
from infomax_jax import evaluation
from infomax_jax import runs
from infomax_jax import train as train_lib
from infomax_jax import tschannen
from infomax_jax import twoview


def _two_optimizers(encoder_tx: optax.GradientTransformation,
                    classifier_tx: optax.GradientTransformation
                    ) -> optax.GradientTransformation:
  """Holds separate optimiser states for the two players (the step updates each)."""
  def init(params):
    return {'encoder': encoder_tx.init(params['encoder']),
            'classifier': classifier_tx.init(params['classifier'])}

  def update(updates, state, params=None):
    raise RuntimeError('never called: the adversarial Task.update steps each '
                       'player with its own optimiser')

  return optax.GradientTransformation(init, update)


def uniformity_loss(logits: jax.Array) -> jax.Array:
  """Cross-entropy from the uniform distribution to softmax(logits), batch mean."""
  return -jnp.mean(jax.nn.log_softmax(logits))


def make_task(config: ml_collections.ConfigDict, train_views: twoview.Views,
              test_views: twoview.Views, *, baselines: dict) -> train_lib.Task:
  """The ``train.Task`` of the encoder-vs-classifier game, with the probe hook."""
  encoder = encoders.make_encoder('realnvp', permutation_seed=0,
                                  **twoview.module_kwargs(config.encoder_kwargs))
  num_classes = int(train_views.labels.max()) + 1
  classifier = nn.Dense(num_classes)
  encoder_tx = optax.adam(config.encoder_learning_rate)
  classifier_tx = optax.adam(config.classifier_learning_rate)
  dim = train_views.images.shape[1] * train_views.images.shape[2] // 2

  def init(key):
    enc_key, clf_key = jax.random.split(key)
    x = jnp.zeros((2, dim), jnp.float32)
    return {'encoder': encoder.init(enc_key, x)['params'],
            'classifier': classifier.init(clf_key, x)['params']}, ()

  def sample(data, key):
    idx_key, noise_key = jax.random.split(key)
    idx = data_lib.batch_indices(idx_key, data['images'].shape[0],
                                 config.batch_size)
    top, _ = data_lib.top_bottom_views(data['images'][idx])
    return {'x': data_lib.add_noise(noise_key, top, config.noise_std),
            'labels': data['labels'][idx]}

  def classifier_loss(clf_params, codes, labels):
    logits = classifier.apply({'params': clf_params}, codes)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, logits

  def classifier_steps(params, opt_state, batch, n):
    codes = jax.lax.stop_gradient(
        encoder.apply({'params': params['encoder']}, batch['x']))
    def body(_, carry):
      clf, opt = carry
      grads, _ = jax.grad(classifier_loss, has_aux=True)(clf, codes, batch['labels'])
      updates, opt = classifier_tx.update(grads, opt, clf)
      return optax.apply_updates(clf, updates), opt
    clf, opt = jax.lax.fori_loop(0, n, body, (params['classifier'],
                                              opt_state['classifier']))
    loss, logits = classifier_loss(clf, codes, batch['labels'])
    metrics = {'classifier_loss': loss,
               'classifier_accuracy': jnp.mean(jnp.argmax(logits, -1) == batch['labels']),
               'uniformity_loss': uniformity_loss(logits)}
    return ({**params, 'classifier': clf}, {**opt_state, 'classifier': opt},
            metrics)

  def encoder_loss(enc_params, clf_params, x):
    codes = encoder.apply({'params': enc_params}, x)
    return uniformity_loss(classifier.apply({'params': clf_params}, codes))

  def warmup(state, batch):
    params, opt_state, metrics = classifier_steps(state.params, state.opt_state,
                                                  batch, 1)
    return params, opt_state, metrics

  def adversarial_round(state, batch):
    params, opt_state, metrics = classifier_steps(
        state.params, state.opt_state, batch, config.classifier_steps)
    grads = jax.grad(encoder_loss)(params['encoder'], params['classifier'],
                                   batch['x'])
    updates, enc_opt = encoder_tx.update(grads, opt_state['encoder'],
                                         params['encoder'])
    params = {**params, 'encoder': optax.apply_updates(params['encoder'], updates)}
    return params, {**opt_state, 'encoder': enc_opt}, metrics

  def update(state, batch, key, tx):
    del key, tx
    params, opt_state, metrics = jax.lax.cond(
        state.step < config.warmup_steps, warmup, adversarial_round, state, batch)
    return state.replace(params=params, opt_state=opt_state), metrics

  encode = twoview.make_encode(lambda p, x: encoder.apply({'params': p}, x))
  train_tops, test_tops = train_views.tops(), test_views.tops()

  def evaluate(params, aux, step, seed=None):
    del aux, step, seed   # deterministic: no evaluation batches are drawn
    train_codes = encode(params['encoder'], train_tops)
    test_codes = encode(params['encoder'], test_tops)
    probe = evaluation.linear_probe(train_codes, train_views.labels, test_codes,
                                test_views.labels, steps=config.probe_steps)
    logits = classifier.apply({'params': params['classifier']}, test_codes)
    adversary = jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(test_views.labels))
    return {'probe_accuracy': probe['accuracy'],
            'adversary_test_accuracy': adversary, **baselines}

  return train_lib.Task(
      init=init, sample=sample,
      data={'images': jnp.asarray(train_views.images),
            'labels': jnp.asarray(train_views.labels, jnp.int32)},
      evaluate=evaluate, optimizer=_two_optimizers(encoder_tx, classifier_tx),
      update=update)


def plot(workdir: str, config: ml_collections.ConfigDict) -> str:
  """Fig. 1c: fresh-probe test accuracy vs step, pixel baselines, warm-up end."""
  evals = runs.read_metrics(workdir, 'eval')
  fig, ax = runs.plots.panels(1, width=5.5, height=3.8, squeeze=True)
  ax.plot(*runs.series(evals, 'probe_accuracy'), 'o-',
          label='linear probe on g(top), from scratch')
  ax.plot(*runs.series(evals, 'adversary_test_accuracy'), 's--',
          label='adversary classifier')
  tschannen.pixel_lines(ax, evals[-1])
  ax.axvline(config.warmup_steps, color='gray', lw=0.8, label='end of warm-up')
  ax.set_title('adversarially trained RealNVP encoder')
  runs.plots.labels(ax, 'iteration', 'test accuracy', legend=True, fontsize=7)
  return runs.plots.save(fig, os.path.join(workdir, 'adversarial.png'))


def run(config: ml_collections.ConfigDict, workdir: str) -> train_lib.TrainState:
  """Loads data, computes the pixel baselines (cached), trains, plots."""
  return tschannen.run(config, workdir, title='', filename='adversarial.png',
                       make_task=make_task, plot=lambda w: plot(w, config))


if __name__ == '__main__':
  runs.main(run, __file__)
