"""The experiment protocol DGI and InfoGraph share: seeds, resume, tables, figure.

An experiment declares a ``Protocol``: how to load a data set, the training
call and the config fields that define a run, how to evaluate a trained
model, how to summarise a data set's runs, its table and the paper's
numbers. ``Protocol.run`` does the rest, the same way for every
experiment.
For every (data set, seed) pair of ``config.datasets`` x ``config.seeds``:

* training runs in its own ``train.train`` folder
  ``runs/<dataset>_seed<seed>/`` (an interrupted training resumes from its
  checkpoint; a folder holding other settings is cleared first);
* the evaluation's numbers go to ``runs.csv`` (one row per pair, written
  last: a pair is finished exactly when it has its row, and finished pairs
  are skipped on a rerun), its detail rows (e.g. every probe run or fold) to
  the protocol's detail CSV, its arrays to ``embeddings/<dataset>_seed<seed>
  .npz``, its time to the run folder's ``timing.json`` (entry 'evaluation');
* ``metrics.jsonl`` (the ``infomax_jax.runs`` schema, tag
  ``run='<dataset>/seed<seed>'``) gets split 'train' with the loss after every
  epoch (step = epochs done) and split 'test' at the last epoch with the
  numbers of the evaluation. Rows and records that an interruption left of
  unfinished pairs are dropped before a rerun.

Then ``results.csv`` and ``results.md`` summarise every data set (over all its
finished seeds) and ``<name>_loss.png`` draws the training losses.
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from infomax_jax import runs
from infomax_jax.graphs import training
from infomax_jax.runs import metrics as run_metrics

RUNS_FILE = 'runs.csv'
RESULTS_FILE = 'results.csv'
TABLE_FILE = 'results.md'
# The runs.csv columns every protocol has, before its own.
RUN_FIELDS = ('dataset', 'seed', 'epochs', 'final_loss', 'compile_s',
              'train_s', 'train_cpu_s', 'eval_s')
# The time columns of every results table: (key, header, format).
TIME_COLUMNS = (('train_s_per_run', 'wall s / run', '.0f'),
                ('train_cpu_s_per_run', 'CPU s / run', '.0f'),
                ('total_s', 'total wall s', '.0f'))

Column = tuple[str, str, Any]   # (summary key, table header, format)


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What a protocol's ``evaluate`` returns for one trained run.

  Attributes:
    row: the protocol's columns of the run's ``runs.csv`` row; its numbers
      are also the run's 'test' record of ``metrics.jsonl``.
    details: rows of the detail CSV (dataset and seed are added).
    arrays: saved as ``embeddings/<dataset>_seed<seed>.npz`` (if any).
  """
  row: dict[str, Any]
  details: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  arrays: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Protocol:
  """What is particular to one experiment; ``run`` does the rest.

  Attributes:
    name: the experiment's name; the figure is ``<name>_loss.png``.
    load: ``(dataset name, data_dir) -> data``.
    train: ``(data, *, seed, workdir, mesh, **fields) -> TrainResult``.
    settings: the config fields passed to ``train`` that define a run
      (changing one restarts the run's training).
    options: config fields passed to ``train`` that do not (e.g. how often
      to checkpoint).
    evaluate: ``(data, result, seed, config) -> Evaluation``.
    run_fields: the columns of ``Evaluation.row``.
    detail_file: the CSV file of ``Evaluation.details``.
    detail_fields: its columns (after dataset and seed).
    summarize: ``(runs, details) -> dict``: summary columns of one data set
      from its ``runs.csv`` rows and detail rows (numbers parsed).
    columns: the protocol's columns of the results table, after the data set.
    caption: the sentence above the table, formatted with the config's
      fields (``'{bound}'``, ...).
    paper: the paper's result per data set name.
  """
  name: str
  load: Callable[[str, Optional[str]], Any]
  train: Callable[..., training.TrainResult]
  settings: Sequence[str]
  options: Sequence[str]
  evaluate: Callable[..., Evaluation]
  run_fields: Sequence[str]
  detail_file: str
  detail_fields: Sequence[str]
  summarize: Callable[[list[dict], list[dict]], dict[str, Any]]
  columns: Sequence[Column]
  caption: str
  paper: dict[str, str]

  def run(self, config: ml_collections.ConfigDict, workdir: str,
          mesh: Any = None) -> list[dict[str, Any]]:
    """Runs the unfinished (data set, seed) pairs, then tables and figure.

    An experiment's ``run`` is this method of its protocol.

    Args:
      config: has ``datasets``, ``seeds``, ``data_dir``, ``bound`` and the
        fields the protocol names.
      workdir: the output folder (a rerun resumes there).
      mesh: the devices to train on (default: all, ``parallel.make_mesh``).

    Returns:
      The summaries of ``summarize``.
    """
    os.makedirs(workdir, exist_ok=True)
    runs_path = os.path.join(workdir, RUNS_FILE)
    run_fields = (*RUN_FIELDS, *self.run_fields)
    done = {run_tag(r['dataset'], r['seed'])
            for r in _read_rows(runs_path, run_fields)}
    _drop_unfinished(self, workdir, done)
    logging.info('JAX devices: %s', jax.devices())
    start = time.perf_counter()
    with _finished_writer(workdir, done) as writer:
      for name in config.datasets:
        todo = [s for s in config.seeds if run_tag(name, s) not in done]
        if len(todo) < len(config.seeds):
          logging.info('%s: seeds %s already in %s, skipped', name,
                       sorted(set(config.seeds) - set(todo)), runs_path)
        data = self.load(name, config.data_dir) if todo else None
        for seed in todo:
          row = _train_and_evaluate(self, config, data, name, seed, workdir,
                                    writer, mesh)
          runs.append_csv(runs_path, run_fields, [row])
    logging.info('all runs done in %.1f s', time.perf_counter() - start)
    summaries = summarize(self, workdir, config.datasets)
    fields = list(dict.fromkeys(k for s in summaries for k in s))
    runs.write_csv(os.path.join(workdir, RESULTS_FILE), fields, summaries)
    table = results_markdown(self, config, summaries)
    runs.write_text(os.path.join(workdir, TABLE_FILE), table)
    plot_losses(workdir, os.path.join(workdir, f'{self.name}_loss.png'),
                f'training loss (-{config.bound})')
    print(table, flush=True)
    return summaries


def run_tag(dataset: str, seed: int) -> str:
  """The ``run`` tag of a (data set, seed) pair in ``metrics.jsonl``."""
  return f'{dataset}/seed{seed}'


def _parsed(row: dict[str, str]) -> dict[str, Any]:
  """A CSV row with its numbers as int or float ('' stays '')."""
  out = {}
  for key, value in row.items():
    for kind in (int, float):
      try:
        value = kind(value)
        break
      except (TypeError, ValueError):
        pass
    out[key] = value
  return out


def _finished_writer(workdir: str, done: set[str]) -> runs.MetricWriter:
  """The folder's metric writer, keeping only the records of finished runs."""
  path = os.path.join(workdir, run_metrics.METRICS_FILE)
  kept = []
  if os.path.exists(path):
    kept = [r for r in runs.read_metrics(workdir) if r.get('run') in done]
    runs.write_text(path, ''.join(json.dumps(r) + '\n' for r in kept))
  # Records up to the last kept step stay; TensorBoard hides later events.
  return runs.MetricWriter(workdir, max((r['step'] for r in kept),
                                        default=None))


def _read_rows(path: str, fields: Sequence[str]) -> list[dict[str, str]]:
  """The rows of a CSV file this module writes, checking its columns."""
  rows = runs.read_csv(path)
  if rows and list(rows[0]) != list(fields):
    raise ValueError(
        f'{path} has the columns {list(rows[0])}, expected {list(fields)} '
        f'(written by another version?): move it away or use another workdir')
  return rows


def _drop_unfinished(protocol: Protocol, workdir: str, done: set[str]) -> None:
  """Removes detail rows of pairs that an interruption left out of runs.csv."""
  path = os.path.join(workdir, protocol.detail_file)
  fields = ('dataset', 'seed', *protocol.detail_fields)
  rows = _read_rows(path, fields)
  kept = [r for r in rows if run_tag(r['dataset'], r['seed']) in done]
  if len(kept) != len(rows):
    runs.write_csv(path, fields, kept)


def _train_and_evaluate(protocol: Protocol, config: ml_collections.ConfigDict,
                        data: Any, name: str, seed: int, workdir: str,
                        writer: runs.MetricWriter, mesh: Any) -> dict[str, Any]:
  """One (data set, seed) pair: trains, evaluates, records; its runs.csv row."""
  tag = run_tag(name, seed)
  settings = {field: config[field] for field in protocol.settings}
  run_dir = runs.run_dir(os.path.join(workdir, 'runs', f'{name}_seed{seed}'),
                         dict(dataset=name, seed=seed, **settings))
  print(f'{tag}: training in {run_dir}', flush=True)
  result = protocol.train(data, seed=seed, workdir=run_dir, mesh=mesh,
                          **settings,
                          **{field: config[field] for field in protocol.options})
  t0 = time.perf_counter()
  evaluation = protocol.evaluate(data, result, seed, config)
  eval_s = time.perf_counter() - t0
  runs.add_time(run_dir, eval_s, name='evaluation', reset=True)
  if evaluation.arrays:
    os.makedirs(os.path.join(workdir, 'embeddings'), exist_ok=True)
    np.savez_compressed(
        os.path.join(workdir, 'embeddings', f'{name}_seed{seed}.npz'),
        **evaluation.arrays)
  epochs = len(result.losses)
  for epoch, loss in enumerate(result.losses, start=1):
    writer.write(epoch, 'train', {'loss': loss}, run=tag)
  writer.write(epochs, 'test', {k: v for k, v in evaluation.row.items()
                                if isinstance(v, (int, float))}, run=tag)
  writer.flush()
  runs.append_csv(os.path.join(workdir, protocol.detail_file),
                  ('dataset', 'seed', *protocol.detail_fields),
                  [{'dataset': name, 'seed': seed, **d}
                   for d in evaluation.details])
  logging.info('%s: %d epochs in %.1f s (+%.1f s compile), evaluated in %.1f '
               's: %s', tag, epochs, result.train_seconds,
               result.compile_seconds, eval_s, evaluation.row)
  return {'dataset': name, 'seed': seed, 'epochs': epochs,
          'final_loss': round(result.losses[-1], 5),
          'compile_s': round(result.compile_seconds, 1),
          'train_s': round(result.train_seconds, 1),
          'train_cpu_s': round(result.train_cpu_seconds, 1),
          'eval_s': round(eval_s, 1), **evaluation.row}


def summarize(protocol: Protocol, workdir: str,
              datasets: Sequence[str]) -> list[dict[str, Any]]:
  """One summary per data set with finished runs, over all of them.

  Args:
    protocol: the experiment.
    workdir: its folder.
    datasets: the data set names, in table order.

  Returns:
    Dicts: dataset, seeds, the protocol's ``summarize`` columns, mean
    training wall and CPU seconds per run (compilation included), total wall
    seconds (training and evaluation) and the paper's number.
  """
  rows = [_parsed(r) for r in runs.read_csv(os.path.join(workdir, RUNS_FILE))]
  details = [_parsed(r) for r in
             runs.read_csv(os.path.join(workdir, protocol.detail_file))]
  out = []
  for name in datasets:
    own = [r for r in rows if r['dataset'] == name]
    if not own:
      continue
    seeds = {r['seed'] for r in own}
    train_s = [r['train_s'] + r['compile_s'] for r in own]
    out.append({
        'dataset': name, 'seeds': len(own),
        **protocol.summarize(own, [d for d in details if d['dataset'] == name
                                   and d['seed'] in seeds]),
        'train_s_per_run': round(float(np.mean(train_s)), 1),
        'train_cpu_s_per_run': round(float(np.mean(
            [r['train_cpu_s'] for r in own])), 1),
        'total_s': round(sum(train_s) + sum(r['eval_s'] for r in own), 1),
        'paper': protocol.paper.get(name, '')})
  return out


def results_markdown(protocol: Protocol, config: ml_collections.ConfigDict,
                     summaries: Sequence[dict[str, Any]]) -> str:
  """The caption and the results table (GitHub Markdown)."""
  columns = [('dataset', 'data set', None), *protocol.columns,
             ('seeds', 'seeds', None), *TIME_COLUMNS, ('paper', 'paper', None)]
  caption = (
      f'{protocol.caption.format(**config.to_dict())} Times on '
      f'{jax.devices()[0].platform.upper()} ({jax.device_count()} '
      f'device(s)), per run: wall s of training incl. compile, and CPU s of '
      f'the training call (all threads, compile included); total wall s '
      f'incl. evaluation.')
  table = runs.markdown_table(
      summaries, [c[0] for c in columns], headers=[c[1] for c in columns],
      formats={c[0]: c[2] for c in columns})
  return f'{caption}\n\n{table}'


def plot_losses(workdir: str, path: str, ylabel: str) -> str:
  """Training loss vs epoch, one line per run of ``metrics.jsonl``."""
  curves: dict[str, list[tuple[int, float]]] = {}
  for record in runs.read_metrics(workdir, 'train'):
    curves.setdefault(record['run'], []).append((record['step'],
                                                 record['loss']))
  fig, ax = runs.plots.panels(1, squeeze=True)
  for tag, points in sorted(curves.items()):
    ax.plot(*zip(*points), label=tag.replace('/', ' '), lw=1)
  runs.plots.labels(ax, 'epoch', ylabel, legend=True, fontsize=7)
  return runs.plots.save(fig, path)
