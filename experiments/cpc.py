"""Contrastive Predictive Coding (van den Oord et al. 2018) beside DIM(L).

  python -m experiments.cpc --config=experiments/configs/cpc.py:cpu \
      --workdir=results/cpc_cpu

For every data set of ``config.datasets`` and every run of ``config.runs``
(name -> overrides: form, encoder, context, ...), trains ``infomax_jax.cpc``
with ``infomax_jax.train`` in ``--workdir/<dataset>/<run>``; 'control' has
``num_steps = 0`` (the encoder at its random initialisation). Each run's
final evaluation gives linear-probe test accuracy on z_grid / z_pool /
c_pool and the test InfoNCE of each offset k beside its ceiling log N.

Outputs in --workdir: ``cpc_table.csv`` / ``cpc_table.md`` (every run),
``cpc_vs_dim.md`` (best CPC feature beside DIM(L) and the random-init
controls, when ``config.dim_table`` names a DIM table of the same data and
budget) and ``cpc.png`` (test I_NCE per offset against log N). A rerun
resumes unfinished runs and re-uses finished ones.
"""

import csv
import os

import ml_collections
import numpy as np

from infomax_jax import cpc
from infomax_jax import data as data_lib
from infomax_jax import runs
from infomax_jax import train as train_lib

ACCURACIES = [f'{f}_linear' for f in cpc.FEATURES]
MAX_OFFSETS = 3     # table columns for k = 1..3 (more offsets stay in metrics.jsonl)
ESTIMATES = [f'{m}_k{k}' for k in range(1, MAX_OFFSETS + 1)
             for m in ('infonce_test', 'log_n')]
TABLE_FIELDS = (['dataset', 'run', 'model', 'context', 'steps'] + ACCURACIES
                + ESTIMATES + ['train_seconds'])
HEADERS = (['run', 'model', 'context', 'steps', 'z grid lin', 'z pool lin',
            'c pool lin'] + [h for k in range(1, MAX_OFFSETS + 1)
                             for h in (f'I_NCE k={k}', f'log N k={k}')] + ['train s'])
_percent = lambda v: f'{100 * float(v):.2f}'
FORMATS = {**{a: _percent for a in ACCURACIES}, **{e: '.3f' for e in ESTIMATES}}


def describe(config) -> dict:
  """Table labels of a run: model (CPC form or random init) and context network."""
  form = {'patches': 'CPC (7×7 patches)' if config.pad == 2 else 'CPC (patches)',
          'rows': 'CPC (pixel rows)'}[config.form]
  return {'model': 'random init' if config.num_steps == 0 else form,
          'context': config.context, 'steps': config.num_steps}


def run_one(config, dataset: str, name: str, workdir: str, splits) -> dict:
  """Trains (or resumes) one run; returns its table row."""
  run_dir = os.path.join(workdir, dataset, name)
  if not (config.num_steps == 0 and 'c_pool_linear' in runs.last_eval(run_dir)):
    train_lib.train(config, cpc.make_task(config, *splits), run_dir)
  return runs.run_row(run_dir, TABLE_FIELDS, dataset=dataset, run=name,
                      **describe(config))


def dim_rows(path: str) -> list[dict]:
  """The random-init and DIM(L) InfoNCE rows (γ = 0) of a ``dim_table.csv``."""
  if not path:
    return []
  with open(path, newline='') as f:
    return [r for r in csv.DictReader(f)
            if r['model'] == 'random init' or (
                r['model'] == 'DIM(L)' and r['estimator'] == 'infonce'
                and float(r['gamma']) == 0.0)]


def comparison(rows: list[dict], dim: list[dict]) -> str:
  """CPC beside DIM(L) and both random-init controls, linear probes, per data set."""
  lines = ['| data set | model | steps | features | linear probe test acc. (%) |'
           ' I_NCE test (nats) | log N |', '|---|---|---|---|---|---|---|']
  for dataset in dict.fromkeys(r['dataset'] for r in rows):
    for r in (r for r in rows if r['dataset'] == dataset):
      for f in cpc.FEATURES:
        lines.append(
            f'| {dataset} | {r["model"]} ({r["context"]}) | {r["steps"]} | {f} | '
            f'{_percent(r[f + "_linear"])} | {float(r["infonce_test_k1"]):.3f} (k=1) | '
            f'{float(r["log_n_k1"]):.3f} |')
    for r in (r for r in dim if r['dataset'] == dataset):
      model = 'DIM encoder, ' + ('random init' if r['model'] == 'random init'
                                 else 'DIM(L) InfoNCE')
      for f in ('conv', 'fc', 'y'):
        lines.append(f'| {dataset} | {model} | {r["steps"]} | {f} | '
                     f'{_percent(r[f + "_linear"])} | {float(r["infonce_test"]):.3f} '
                     f'(local) | – |')
  return '\n'.join(lines) + '\n'


def plot(rows: list[dict], path: str) -> str:
  """Test I_NCE per offset beside its ceiling log N, per data set."""
  datasets = list(dict.fromkeys(r['dataset'] for r in rows))
  fig, axes = runs.plots.panels(len(datasets), width=5.5, height=3.8)
  ks = np.arange(1, MAX_OFFSETS + 1)
  for ax, dataset in zip(axes, datasets):
    for r in (r for r in rows if r['dataset'] == dataset):
      values = [r.get(f'infonce_test_k{k}', '') for k in ks]
      if '' in values:
        continue
      line, = ax.plot(ks, [float(v) for v in values], 'o-', label=r['run'])
      ax.plot(ks, [float(r[f'log_n_k{k}']) for k in ks], ':', color=line.get_color())
    ax.set_xticks(ks)
    ax.set_title(f'{dataset} (dotted: log N)')
    runs.plots.labels(ax, 'offset k (rows ahead)', 'test I_NCE (nats)', legend=True)
  return runs.plots.save(fig, path, 'CPC: InfoNCE of k-step predictions vs log N')


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Every (data set, run) of ``config``; writes the tables and the figure."""
  rows = []
  for dataset in config.datasets:
    splits = data_lib.load_splits(config, dataset)
    for name in runs.run_names(config):
      run_config = runs.override(config, dataset=dataset,
                                 **config.runs[name].to_dict())
      del run_config['dim_table']    # how to tabulate, not how to train
      if config.get('skip_unfinished') and not runs.finished(
          os.path.join(workdir, dataset, name), run_config.num_steps):
        print(f'skipping {dataset}/{name}: not finished', flush=True)
        continue
      print(f'=== {dataset} / {name} ===', flush=True)
      rows.append(run_one(run_config, dataset, name, workdir, splits))
      print(f'{dataset}/{name}: {rows[-1]}', flush=True)
  os.makedirs(workdir, exist_ok=True)
  runs.write_csv(os.path.join(workdir, 'cpc_table.csv'), TABLE_FIELDS, rows)
  table = runs.write_text(os.path.join(workdir, 'cpc_table.md'), '\n'.join(
      f'### {d}\n\n' + runs.markdown_table(
          [r for r in rows if r['dataset'] == d], TABLE_FIELDS[1:],
          headers=HEADERS, formats=FORMATS)
      for d in dict.fromkeys(r['dataset'] for r in rows)))
  print(open(table).read(), flush=True)
  dim = dim_rows(config.get('dim_table', ''))
  if dim:
    path = runs.write_text(os.path.join(workdir, 'cpc_vs_dim.md'),
                           comparison(rows, dim))
    print(open(path).read(), flush=True)
  print(f'wrote {plot(rows, os.path.join(workdir, "cpc.png"))}', flush=True)
  return rows


if __name__ == '__main__':
  runs.main(run, __file__)
