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
``dim_prior.png`` (W1 of σ(Y) to the prior during training); each run folder
holds metrics.jsonl (+ TensorBoard events), timing.json and checkpoints/.
A rerun resumes unfinished runs and re-uses finished ones;
``--config.skip_unfinished=True`` only tabulates the finished ones.
"""

import os

import ml_collections
import numpy as np

from infomax_jax import data as data_lib
from infomax_jax import dim as dim_lib
from infomax_jax import runs
from infomax_jax import train as train_lib

FEATURES = ('conv', 'fc', 'y')
PROBES = ('linear', 'mlp')
ACCURACIES = [f'{f}_{p}' for f in FEATURES for p in PROBES]
TABLE_FIELDS = (['dataset', 'run', 'model', 'estimator', 'gamma', 'steps']
                + ACCURACIES
                + ['w1_prior', 'energy_prior', 'c2st_accuracy',
                   'discriminator_accuracy', 'infonce_test', 'train_seconds'])
HEADERS = (['run', 'model', 'estimator', 'γ', 'steps', 'conv lin', 'conv MLP',
            'fc lin', 'fc MLP', 'Y lin', 'Y MLP', 'W1(σ(Y), U)', 'energy(σ(Y), U)',
            'C2ST acc', 'D acc', 'I_NCE test', 'train s'])
_percent = lambda v: f'{100 * float(v):.2f}'
FORMATS = {**{a: _percent for a in ACCURACIES}, 'w1_prior': '.4f',
           'energy_prior': '.4f', 'c2st_accuracy': '.3f',
           'discriminator_accuracy': '.3f', 'infonce_test': '.3f'}


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


def run_one(config, dataset: str, name: str, workdir: str, splits) -> dict:
  """Trains (or resumes) one run; returns its table row."""
  run_dir = os.path.join(workdir, dataset, name)
  if not (config.num_steps == 0 and 'energy_prior' in runs.last_eval(run_dir)):
    train_lib.train(config, dim_lib.make_task(config, *splits), run_dir)
  return runs.run_row(run_dir, TABLE_FIELDS, dataset=dataset, run=name,
                      **describe(config))


def markdown(rows: list[dict]) -> str:
  """Table 1 style Markdown: one table per data set, accuracies in %."""
  return '\n'.join(
      f'### {dataset}\n\n' + runs.markdown_table(
          [r for r in rows if r['dataset'] == dataset], TABLE_FIELDS[1:],
          headers=HEADERS, formats=FORMATS)
      for dataset in dict.fromkeys(r['dataset'] for r in rows))


def plot(rows: list[dict], path: str) -> str:
  """Bar chart of linear-probe accuracy on each feature, per data set and run."""
  datasets = list(dict.fromkeys(r['dataset'] for r in rows))
  fig, axes = runs.plots.panels(len(datasets), width=6, height=4)
  for ax, dataset in zip(axes, datasets):
    sub = [r for r in rows if r['dataset'] == dataset]
    x = np.arange(len(sub))
    for k, feat in enumerate(FEATURES):
      ax.bar(x + (k - 1) * 0.27, [100 * float(r[f'{feat}_linear']) for r in sub],
             0.27, label=f'{feat} (linear)')
    ax.set_xticks(x, [r['run'] for r in sub], rotation=45, ha='right')
    lo = min(100 * float(r[f'{f}_linear']) for r in sub for f in FEATURES)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_title(dataset)
    runs.plots.labels(ax, '', 'test accuracy (%)', legend=True)
  return runs.plots.save(
      fig, path, 'Deep InfoMax: linear probes (Hjelm et al. Table 1 protocol)')


def plot_prior(workdir: str, rows: list[dict], path: str) -> str:
  """W1(σ(Y), U[0,1]) on train batches vs step of every trained run: how
  prior matching (γ > 0, with or without R1) moves σ(Y)."""
  datasets = list(dict.fromkeys(r['dataset'] for r in rows))
  fig, axes = runs.plots.panels(len(datasets), width=7.5, height=4)
  colors = runs.plots.pyplot().get_cmap('tab20').colors
  for ax, dataset in zip(axes, datasets):
    trained = [r for r in rows if r['dataset'] == dataset and int(r['steps']) > 0]
    for k, r in enumerate(trained):
      train = runs.read_metrics(os.path.join(workdir, dataset, r['run']), 'train')
      ax.plot(*runs.series(train, 'w1_prior'), label=f'{r["run"]} (γ={r["gamma"]})',
              color=colors[k % 20], linestyle='-' if float(r['gamma']) else ':')
    ax.set_title(dataset)
    runs.plots.labels(ax, 'step', 'W1(σ(Y), U[0,1]), train batches', legend=True,
                      fontsize=7, loc='center left', bbox_to_anchor=(1.0, 0.5))
  return runs.plots.save(
      fig, path, 'Deep InfoMax: distance of σ(Y) to the prior during training')


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Every (data set, run) of ``config``; writes the tables and the figures."""
  rows = []
  for dataset in config.datasets:
    splits = data_lib.load_splits(config, dataset)
    for name in runs.run_names(config):
      run_config = runs.override(config, dataset=dataset,
                                 **config.runs[name].to_dict())
      if config.get('skip_unfinished') and not runs.finished(
          os.path.join(workdir, dataset, name), run_config.num_steps):
        print(f'skipping {dataset}/{name}: not finished', flush=True)
        continue
      print(f'=== {dataset} / {name} ===', flush=True)
      rows.append(run_one(run_config, dataset, name, workdir, splits))
      print(f'{dataset}/{name}: {rows[-1]}', flush=True)
  os.makedirs(workdir, exist_ok=True)
  runs.write_csv(os.path.join(workdir, 'dim_table.csv'), TABLE_FIELDS, rows)
  table = runs.write_text(os.path.join(workdir, 'dim_table.md'), markdown(rows))
  paths = (plot(rows, os.path.join(workdir, 'dim.png')),
           plot_prior(workdir, rows, os.path.join(workdir, 'dim_prior.png')))
  print(open(table).read(), flush=True)
  print(f'wrote {paths[0]} and {paths[1]}', flush=True)
  return rows


if __name__ == '__main__':
  runs.main(run, __file__)
