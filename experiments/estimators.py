r"""Estimate vs truth: every bound x critic of ``estimate_mi`` on the known-MI suite.

  python -m experiments.estimators --config=experiments/configs/estimators.py \
      --workdir=/tmp/estimators

For each task of ``infomax_jax.distributions`` (``config.tasks``), seed, critic
and bound, draws ``config.num_samples`` pairs and calls
``infomax_jax.estimate_mi`` with ``config.estimator``.

Data parallel with no code change: ``estimate_mi`` shards every training and
held-out batch over all devices (``parallel.shard_batch`` on its ``'data'``
mesh). It does not go through ``infomax_jax.train.train``: this experiment
measures ``estimate_mi`` itself (its public fit: on-device early stopping on
the held-out estimate, best-parameter selection, no work folder), and one
estimate is a single jitted program of at most ``steps`` steps (seconds on a
GPU), so the resume unit is the estimate: each finished one is appended to
results.jsonl at once and skipped by a rerun. Writes to --workdir:

  results.jsonl   one line per estimate (estimate, stderr, steps, seconds, ...);
                  estimates already there are skipped, so a rerun resumes.
                  With --config.num_shards=n, process i of n
                  (--config.shard_index=i) runs every n-th task and writes
                  results.shard{i}of{n}.jsonl; a final run with the default
                  single shard finds everything done and writes the tables.
  table.md / table.csv  mean estimate over seeds vs the true MI, per task, for
                  every (bound, critic); the markdown also has the accuracy
                  summary (share within 10 % or 0.1 nats of the truth).
  timing.md       mean wall time per estimate (compilation included) and steps.
  estimators.png  estimate against true MI, one panel per bound.
"""

import collections
import csv
import json
import math
import os
import time

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from infomax_jax import distributions
from infomax_jax.estimate import estimate_mi


def is_accurate(estimate: float, truth: float) -> bool:
  """The issue's criterion: within 10 % or within 0.1 nats of the truth."""
  err = abs(estimate - truth)
  return err <= 0.1 * truth or err <= 0.1


def _key(task: str, critic: str, bound: str, seed: int) -> tuple:
  return (task, critic, bound, int(seed))


def _load(workdir: str) -> dict[tuple, dict]:
  """Rows of every results*.jsonl in workdir (all shards)."""
  rows = {}
  if not os.path.isdir(workdir):
    return rows
  for name in sorted(os.listdir(workdir)):
    if name.startswith('results') and name.endswith('.jsonl'):
      with open(os.path.join(workdir, name)) as f:
        for line in f:
          if line.strip():
            r = json.loads(line)
            rows[_key(r['task'], r['critic'], r['bound'], r['seed'])] = r
  return rows


def run(config: ml_collections.ConfigDict, workdir: str,
        mesh=None) -> dict[tuple, dict]:
  """Runs (or resumes) every estimate; returns the rows keyed by _key.

  ``mesh``: the devices every estimate's batches are split over (default:
  all, see ``estimate_mi``).
  """
  os.makedirs(workdir, exist_ok=True)
  i, n = config.shard_index, config.num_shards
  if not 0 <= i < n:
    raise ValueError(f'need 0 <= shard_index < num_shards, got {i} and {n}')
  path = os.path.join(workdir, 'results.jsonl' if n == 1 else
                      f'results.shard{i}of{n}.jsonl')
  rows = _load(workdir)
  est_kwargs = dict(config.estimator)
  critic_kwargs = {
      'separable': dict(hidden=tuple(config.separable_hidden),
                        embed_dim=config.separable_embed_dim),
      'concat': dict(hidden=tuple(config.concat_hidden)),
  }
  # Shard i of n takes every n-th task (processes sharing one machine).
  tasks = distributions.suite(list(config.tasks)[i::n])
  total = len(tasks) * len(config.seeds) * len(config.critics) * len(config.bounds)
  done_before = sum(1 for t in tasks for s in config.seeds for c in config.critics
                    for b in config.bounds if _key(t.name, c, b, s) in rows)
  logging.info('%d estimates, %d already in %s', total, done_before, path)
  start, new = time.perf_counter(), 0
  with open(path, 'a') as f:
    for task in tasks:
      data = {}
      for critic in config.critics:
        for bound in config.bounds:
          # Seeds innermost: one compilation serves all seeds of a combination.
          for seed in config.seeds:
            k = _key(task.name, critic, bound, seed)
            if k in rows:
              continue
            if seed not in data:
              x, y = task.sample(jax.random.key(seed), config.num_samples)
              data[seed] = (np.asarray(x), np.asarray(y))
            r = estimate_mi(*data[seed], bound=bound, critic=critic, seed=seed,
                            critic_kwargs=critic_kwargs.get(critic),
                            mesh=mesh, **est_kwargs)
            row = dict(task=task.name, dim_x=task.dim_x, dim_y=task.dim_y,
                       true_mi=task.mutual_information, critic=critic,
                       bound=bound, eval_bound=r.eval_bound, seed=int(seed),
                       estimate=r.mi, stderr=r.stderr, steps_run=r.steps_run,
                       best_step=r.best_step, seconds=r.seconds,
                       num_samples=config.num_samples)
            rows[k] = row
            f.write(json.dumps(row) + '\n')
            f.flush()
            new += 1
            elapsed = time.perf_counter() - start
            remaining = total - done_before - new
            logging.info(
                '[%d/%d] %-34s %-9s %-12s seed %d: %.3f +- %.3f (true %.3f) '
                '%5d steps %5.1fs | ETA %.0f min', done_before + new, total,
                task.name, critic, bound, seed, r.mi, r.stderr,
                task.mutual_information, r.steps_run, r.seconds,
                elapsed / new * remaining / 60)
  return rows


def summarize(config: ml_collections.ConfigDict, rows: dict[tuple, dict],
              workdir: str) -> str:
  """Writes table.md, table.csv, timing.md and estimators.png; returns table.md."""
  groups = collections.defaultdict(list)
  for r in rows.values():
    if (r['task'] in config.tasks and r['critic'] in config.critics
        and r['bound'] in config.bounds and r['seed'] in config.seeds):
      groups[(r['task'], r['critic'], r['bound'])].append(r)
  truth = {r['task']: r['true_mi'] for g in groups.values() for r in g}
  dims = {r['task']: (r['dim_x'], r['dim_y']) for g in groups.values() for r in g}
  mean = {k: float(np.mean([r['estimate'] for r in g])) for k, g in groups.items()}

  # CSV: long format.
  with open(os.path.join(workdir, 'table.csv'), 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['task', 'dim_x', 'dim_y', 'true_mi', 'critic', 'bound',
                'mean_estimate', 'std_over_seeds', 'mean_stderr', 'n_seeds',
                'accurate', 'mean_seconds', 'mean_steps'])
    for (t, c, b), g in sorted(groups.items()):
      est = [r['estimate'] for r in g]
      w.writerow([t, *dims[t], f'{truth[t]:.4f}', c, b, f'{mean[t, c, b]:.4f}',
                  f'{np.std(est):.4f}',
                  f'{np.mean([r["stderr"] for r in g]):.4f}', len(g),
                  int(is_accurate(mean[t, c, b], truth[t])),
                  f'{np.mean([r["seconds"] for r in g]):.2f}',
                  f'{np.mean([r["steps_run"] for r in g]):.0f}'])

  log_k = math.log(config.estimator.batch_size)
  tasks = [t for t in config.tasks if t in truth]
  lines = [f'Mean held-out estimate over seeds {tuple(config.seeds)} (nats), '
           f'{config.num_samples} samples per task, K = '
           f'{config.estimator.batch_size} (log K = {log_k:.2f}); '
           '* marks an estimate off by more than 10 % and more than 0.1 nats.',
           '']
  for critic in config.critics:
    lines += [f'### critic = {critic}', '',
              '| task | d_x x d_y | true MI | ' + ' | '.join(config.bounds) + ' |',
              '|---|---|---|' + '---|' * len(config.bounds)]
    for t in tasks:
      cells = []
      for b in config.bounds:
        m = mean.get((t, critic, b))
        cells.append('' if m is None else
                     f'{m:.3f}' + ('' if is_accurate(m, truth[t]) else '*'))
      lines.append(f'| {t} | {dims[t][0]}x{dims[t][1]} | {truth[t]:.3f} | '
                   + ' | '.join(cells) + ' |')
    lines.append('')
  lines += ['### accuracy: tasks within 10 % or 0.1 nats (MI < log K only)', '',
            '| critic | ' + ' | '.join(config.bounds) + ' |',
            '|---|' + '---|' * len(config.bounds)]
  for critic in config.critics:
    cells = []
    for b in config.bounds:
      ok = [is_accurate(mean[t, critic, b], truth[t]) for t in tasks
            if (t, critic, b) in mean and truth[t] < log_k]
      cells.append(f'{sum(ok)}/{len(ok)}' if ok else '')
    lines.append(f'| {critic} | ' + ' | '.join(cells) + ' |')
  dc, db = config.default_critic, config.default_bound
  misses = [t for t in tasks if (t, dc, db) in mean and truth[t] < log_k
            and not is_accurate(mean[t, dc, db], truth[t])]
  lines += ['', f'Default (bound={db}, critic={dc}) misses: '
            + (', '.join(f'{t} ({mean[t, dc, db]:.3f} vs {truth[t]:.3f})'
                         for t in misses) or 'none'), '']
  table = '\n'.join(lines)
  with open(os.path.join(workdir, 'table.md'), 'w') as f:
    f.write(table)

  # Timing per (critic, bound): mean over tasks and seeds.
  tl = ['Mean wall time per estimate in seconds (compilation included; seeds '
        'after the first reuse the compiled fit) / mean training steps.', '',
        '| critic | ' + ' | '.join(config.bounds) + ' |',
        '|---|' + '---|' * len(config.bounds)]
  for critic in config.critics:
    cells = []
    for b in config.bounds:
      g = [r for (t, c, bb), rs in groups.items() if c == critic and bb == b
           for r in rs]
      cells.append(f'{np.mean([r["seconds"] for r in g]):.1f} / '
                   f'{np.mean([r["steps_run"] for r in g]):.0f}' if g else '')
    tl.append(f'| {critic} | ' + ' | '.join(cells) + ' |')
  with open(os.path.join(workdir, 'timing.md'), 'w') as f:
    f.write('\n'.join(tl) + '\n')

  _plot(config, groups, truth, os.path.join(workdir, 'estimators.png'))
  return table + '\n' + '\n'.join(tl)


def _plot(config, groups, truth, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  nb = len(config.bounds)
  ncol = min(4, nb)
  nrow = -(-nb // ncol)
  fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.0 * nrow),
                           squeeze=False, sharex=True, sharey=True)
  hi = max(truth.values()) * 1.25 if truth else 1.0
  lo = -0.5
  markers = {'separable': 'o', 'concat': 's'}
  for ax, b in zip(axes.flat, config.bounds):
    ax.plot([0, hi], [0, hi], 'k-', lw=0.8)
    ax.fill_between([0, hi], [-0.1, 0.9 * hi], [0.1, 1.1 * hi], color='0.9')
    for critic in config.critics:
      pts = [(truth[t], r['estimate']) for (t, c, bb), rs in groups.items()
             if c == critic and bb == b for r in rs]
      if pts:
        p = np.array(pts)
        low = p[:, 1] < lo        # off the bottom: drawn on the edge as 'v'
        ax.scatter(p[~low, 0], p[~low, 1], s=14, alpha=0.7,
                   marker=markers.get(critic, 'x'), label=critic)
        if low.any():
          ax.scatter(p[low, 0], np.full(low.sum(), lo + 0.05), s=18,
                     alpha=0.7, marker='v', color=ax.collections[-1].get_facecolor())
    ax.set_title(b)
    ax.set_xlim(0, hi)
    ax.set_ylim(lo, hi)
  for ax in axes.flat[nb:]:
    ax.axis('off')
  axes[0, 0].legend(fontsize=8)
  for ax in axes[-1]:
    ax.set_xlabel('true MI (nats)')
  for ax in axes[:, 0]:
    ax.set_ylabel('held-out estimate (nats)')
  fig.suptitle(f'estimate_mi on the known-MI suite ({config.num_samples} '
               f'samples; grey: within 10 % or 0.1 nats; v: below {lo})',
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required')
  config = _CONFIG.value
  logging.info('config:\n%s', config)
  if _SUMMARIZE_ONLY.value:
    rows = _load(_WORKDIR.value)
  else:
    rows = run(config, _WORKDIR.value)
  print(summarize(config, rows, _WORKDIR.value))


if __name__ == '__main__':
  # Flags are defined here, not at import, so that the experiment modules can
  # be imported together (tests, tests/multidevice_checks.py).
  _CONFIG = config_flags.DEFINE_config_file(
      'config',
      os.path.join(os.path.dirname(__file__), 'configs', 'estimators.py'),
      'Experiment config (ml_collections); append :quick for the smoke run.',
      lock_config=True)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
  _SUMMARIZE_ONLY = flags.DEFINE_bool(
      'summarize_only', False,
      'Only write the tables and plot from the results already in --workdir.')
  app.run(main)
