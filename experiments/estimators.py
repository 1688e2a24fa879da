r"""Estimate vs truth: every bound x critic of ``estimate_mi`` on the known-MI suite.

  python -m experiments.estimators --config=experiments/configs/estimators.py \
      --workdir=/tmp/estimators

For each task of ``infomax_jax.distributions`` (``config.tasks``), seed, critic
and bound, draws ``config.num_samples`` pairs and calls
``infomax_jax.estimate_mi`` with ``config.estimator`` (which shards every batch
over all devices). This measures ``estimate_mi`` itself, not
``train.train``: one estimate is one jitted program, so the resume unit is the
estimate. Writes to --workdir:

  results.jsonl   one line per estimate (estimate, stderr, steps, seconds, ...),
                  appended as each finishes; a rerun skips those already there.
                  With --config.num_shards=n, process i (--config.shard_index=i)
                  runs every n-th task into results.shard{i}of{n}.jsonl; a final
                  single-shard run finds everything done and writes the tables.
  table.md / table.csv  mean estimate over seeds vs the true MI, per task, for
                  every (bound, critic); table.md adds the accuracy summary
                  (share within 10 % or 0.1 nats of the truth).
  timing.md       mean wall time per estimate (compilation included) and steps.
  estimators.png  estimate against true MI, one panel per bound.
"""

import collections
import json
import math
import os

from absl import logging
import jax
import ml_collections
import numpy as np

from infomax_jax import distributions
from infomax_jax import runs
from infomax_jax.estimate import estimate_mi

TABLE_FIELDS = ('task', 'dim_x', 'dim_y', 'true_mi', 'critic', 'bound',
                'mean_estimate', 'std_over_seeds', 'mean_stderr', 'n_seeds',
                'accurate', 'mean_seconds', 'mean_steps')


def is_accurate(estimate: float, truth: float) -> bool:
  """The issue's criterion: within 10 % or within 0.1 nats of the truth."""
  err = abs(estimate - truth)
  return err <= 0.1 * truth or err <= 0.1


def _key(task: str, critic: str, bound: str, seed: int) -> tuple:
  return (task, critic, bound, int(seed))


def _load(workdir: str) -> dict[tuple, dict]:
  """Rows of every results*.jsonl in workdir (all shards)."""
  rows = {}
  # Shards (and copied repetitions) first: the unsharded run's rows win, so a
  # report keeps the timing of the run that ran beside BMI.
  for name in sorted(os.listdir(workdir), key=lambda n: (n == 'results.jsonl', n)):
    if name.startswith('results') and name.endswith('.jsonl'):
      with open(os.path.join(workdir, name)) as f:
        for r in map(json.loads, filter(str.strip, f)):
          rows[_key(r['task'], r['critic'], r['bound'], r['seed'])] = r
  return rows


def estimate_all(config: ml_collections.ConfigDict, workdir: str,
                 mesh=None) -> dict[tuple, dict]:
  """Runs (or resumes) this shard's estimates; returns every row keyed by _key."""
  i, n = config.shard_index, config.num_shards
  if not 0 <= i < n:
    raise ValueError(f'need 0 <= shard_index < num_shards, got {i} and {n}')
  rows = _load(workdir)
  critic_kwargs = {
      'separable': dict(hidden=tuple(config.separable_hidden),
                        embed_dim=config.separable_embed_dim),
      'concat': dict(hidden=tuple(config.concat_hidden))}
  names = list(config.tasks) + [t for t in config.get('high_mi_tasks', ())
                                 if t not in config.tasks]
  tasks = distributions.suite(names[i::n])
  todo = [(t, c, b, s) for t in tasks for c in config.critics
          for b in config.bounds for s in config.seeds   # seeds innermost: one
          if _key(t.name, c, b, s) not in rows]          # compilation for all
  # Coverage repetitions: the default estimator on fresh samples per seed.
  for t in distributions.suite(list(config.get('coverage_tasks', ()))[i::n]):
    todo += [(t, config.default_critic, config.default_bound, s)
             for s in config.coverage_seeds
             if _key(t.name, config.default_critic, config.default_bound, s)
             not in rows and (t, config.default_critic, config.default_bound, s)
             not in todo]
  progress = runs.Progress(len(todo), unit='estimates')
  path = os.path.join(workdir, 'results.jsonl' if n == 1 else
                      f'results.shard{i}of{n}.jsonl')
  data = {}                                  # the current task's samples
  for done, (task, critic, bound, seed) in enumerate(todo, 1):
    if (task.name, seed) not in data:
      data = {k: v for k, v in data.items() if k[0] == task.name}
      x, y = task.sample(jax.random.key(seed), config.num_samples)
      data[task.name, seed] = (np.asarray(x), np.asarray(y))
    r = estimate_mi(*data[task.name, seed], bound=bound, critic=critic,
                    seed=seed, critic_kwargs=critic_kwargs.get(critic),
                    mesh=mesh, **config.estimator.to_dict())
    row = dict(task=task.name, dim_x=task.dim_x, dim_y=task.dim_y,
               true_mi=task.mutual_information, critic=critic, bound=bound,
               eval_bound=r.eval_bound, seed=int(seed), estimate=r.mi,
               stderr=r.stderr, steps_run=r.steps_run, best_step=r.best_step,
               seconds=r.seconds, num_samples=config.num_samples)
    interval = getattr(r, 'interval', None)
    if interval is not None:
      row.update(interval_lo=float(interval[0]), interval_hi=float(interval[1]),
                 confidence=float(r.confidence), eval_pairs=int(r.eval_pairs),
                 estimator=r.estimator,
                 members=[float(v) for v in r.member_estimates])
    rows[_key(task.name, critic, bound, seed)] = row
    with open(path, 'a') as f:
      f.write(json.dumps(row) + '\n')
    logging.info('%s %s/%s seed %d: %.3f +- %.3f (true %.3f) | %s', task.name,
                 critic, bound, seed, r.mi, r.stderr, task.mutual_information,
                 progress.line(done, label='estimate'))
  return rows


def summarize(config: ml_collections.ConfigDict, rows: dict[tuple, dict],
              workdir: str) -> str:
  """Writes table.md, table.csv, timing.md and estimators.png; returns the text."""
  groups = collections.defaultdict(list)
  for r in rows.values():
    if (r['task'] in config.tasks and r['critic'] in config.critics
        and r['bound'] in config.bounds and r['seed'] in config.seeds):
      groups[r['task'], r['critic'], r['bound']].append(r)
  first = {t: g[0] for (t, _, _), g in groups.items()}
  mean = {k: float(np.mean([r['estimate'] for r in g])) for k, g in groups.items()}
  truth = {t: r['true_mi'] for t, r in first.items()}
  runs.write_csv(os.path.join(workdir, 'table.csv'), TABLE_FIELDS, [dict(
      task=t, dim_x=first[t]['dim_x'], dim_y=first[t]['dim_y'], true_mi=truth[t],
      critic=c, bound=b, mean_estimate=mean[t, c, b],
      std_over_seeds=np.std([r['estimate'] for r in g]),
      mean_stderr=np.mean([r['stderr'] for r in g]), n_seeds=len(g),
      accurate=int(is_accurate(mean[t, c, b], truth[t])),
      mean_seconds=np.mean([r['seconds'] for r in g]),
      mean_steps=np.mean([r['steps_run'] for r in g]))
      for (t, c, b), g in sorted(groups.items())])

  log_k = math.log(config.estimator.batch_size)
  tasks = [t for t in config.tasks if t in truth]
  cell = lambda m, t: f'{m:.3f}' + ('' if is_accurate(m, truth[t]) else '*')
  text = (f'Mean held-out estimate over seeds {tuple(config.seeds)} (nats), '
          f'{config.num_samples} samples per task, K = '
          f'{config.estimator.batch_size} (log K = {log_k:.2f}); * marks an '
          'estimate off by more than 10 % and more than 0.1 nats.\n')
  for critic in config.critics:
    table = [{'task': t, 'dims': f'{first[t]["dim_x"]}x{first[t]["dim_y"]}',
              'true': f'{truth[t]:.3f}', **{b: cell(mean[t, critic, b], t)
                                            for b in config.bounds
                                            if (t, critic, b) in mean}}
             for t in tasks]
    text += f'\n### critic = {critic}\n\n' + runs.markdown_table(
        table, ['task', 'dims', 'true', *config.bounds],
        headers=['task', 'd_x x d_y', 'true MI', *config.bounds])
  accuracy = []
  for critic in config.critics:
    ok = {b: [is_accurate(mean[t, critic, b], truth[t]) for t in tasks
              if (t, critic, b) in mean and truth[t] < log_k] for b in config.bounds}
    accuracy.append({'critic': critic, **{b: f'{sum(v)}/{len(v)}'
                                          for b, v in ok.items() if v}})
  text += ('\n### accuracy: tasks within 10 % or 0.1 nats (MI < log K only)\n\n'
           + runs.markdown_table(accuracy, ['critic', *config.bounds]))
  dc, db = config.default_critic, config.default_bound
  misses = [f'{t} ({mean[t, dc, db]:.3f} vs {truth[t]:.3f})' for t in tasks
            if (t, dc, db) in mean and truth[t] < log_k
            and not is_accurate(mean[t, dc, db], truth[t])]
  text += f'\nDefault (bound={db}, critic={dc}) misses: {", ".join(misses) or "none"}\n'
  runs.write_text(os.path.join(workdir, 'table.md'), text)

  per_pair = collections.defaultdict(list)  # (critic, bound) -> (seconds, steps)
  for (_, c, b), g in groups.items():
    per_pair[c, b] += [(r['seconds'], r['steps_run']) for r in g]
  timing = [{'critic': c, **{b: '{:.1f} / {:.0f}'.format(*np.mean(v, axis=0))
                             for (cc, b), v in per_pair.items() if cc == c}}
            for c in config.critics]
  timing_text = ('Mean wall time per estimate in seconds (compilation included; '
                 'seeds after the first reuse the compiled fit) / mean training '
                 'steps.\n\n' + runs.markdown_table(timing, ['critic', *config.bounds]))
  runs.write_text(os.path.join(workdir, 'timing.md'), timing_text)
  _plot(config, groups, truth, os.path.join(workdir, 'estimators.png'))
  return text + '\n' + timing_text


def _plot(config, groups, truth, path):
  """Estimate vs true MI, one panel per bound; off-scale points as 'v' at the edge."""
  nb = len(config.bounds)
  fig, axes = runs.plots.panels(nb, rows=-(-nb // 4), width=3.2, height=3.0)
  hi, lo = (max(truth.values()) * 1.25 if truth else 1.0), -0.5
  for ax, b in zip(axes, config.bounds):
    ax.plot([0, hi], [0, hi], 'k-', lw=0.8)
    ax.fill_between([0, hi], [-0.1, 0.9 * hi], [0.1, 1.1 * hi], color='0.9')
    for critic, marker in zip(config.critics, 'osx^'):
      p = np.array([(truth[t], r['estimate']) for (t, c, bb), g in groups.items()
                    if (c, bb) == (critic, b) for r in g]).reshape(-1, 2)
      if not len(p):
        continue
      low = p[:, 1] < lo
      dots = ax.scatter(p[~low, 0], p[~low, 1], s=14, alpha=0.7, marker=marker,
                        label=critic)
      ax.scatter(p[low, 0], np.full(low.sum(), lo + 0.05), s=18, alpha=0.7,
                 marker='v', color=dots.get_facecolor())
    ax.set(title=b, xlim=(0, hi), ylim=(lo, hi))
    runs.plots.labels(ax, 'true MI (nats)', 'held-out estimate (nats)',
                      legend=ax is axes[0], fontsize=8)
  runs.plots.save(fig, path, title=(
      f'estimate_mi on the known-MI suite ({config.num_samples} samples; grey: '
      f'within 10 % or 0.1 nats; v: below {lo})'))


def is_accurate_high_mi(estimate: float, truth: float) -> bool:
  """The issue's high-MI criterion: within 15 % of the truth."""
  return abs(estimate - truth) <= 0.15 * truth


def _bmi(path: str) -> dict[str, dict]:
  """BMI's InfoNCE rows by task (benchmarks/estimate_bmi.py), {} if absent."""
  if not path or not os.path.exists(path):
    return {}
  with open(path) as f:
    return {r['task']: r for r in map(json.loads, filter(str.strip, f))}


def coverage_stats(group: list[dict]) -> dict:
  """Coverage of the true MI by the interval over repetitions of one task.

  ``group``: the task's rows (one per repetition, each with an interval).
  Returns n, coverage (share of intervals holding the truth), calibration
  (share holding the mean estimate over the repetitions, a stand-in for the
  estimator's expectation: whether the width fits the noise it claims to
  cover, whatever the bias), the mean estimate, its bias, the spread over
  repetitions (sd), the mean half-width and the verdict: 'bias dominates'
  (|bias| above the interval's standard error se = half-width / z: even an
  interval of the right width then covers the truth at most ~83 % of the
  time at 95 % nominal), 'interval too narrow' (sd over repetitions > 1.2 se)
  or 'ok'.
  """
  truth = group[0]['true_mi']
  est = np.array([r['estimate'] for r in group])
  half = float(np.mean([(r['interval_hi'] - r['interval_lo']) / 2 for r in group]))
  covered = [r['interval_lo'] <= truth <= r['interval_hi'] for r in group]
  calibrated = [r['interval_lo'] <= est.mean() <= r['interval_hi'] for r in group]
  bias = float(est.mean() - truth)
  sd = float(est.std(ddof=1)) if len(group) > 1 else math.nan
  se = float(np.mean([r['stderr'] for r in group]))   # half-width / z
  verdict = ('bias dominates' if abs(bias) > se else
             'interval too narrow' if sd > 1.2 * se else 'ok')
  return dict(truth=truth, n=len(group), coverage=float(np.mean(covered)),
              calibration=float(np.mean(calibrated)), mean=float(est.mean()),
              bias=bias, sd=sd, half=half, verdict=verdict)


def report(config: ml_collections.ConfigDict, rows: dict[tuple, dict],
           workdir: str) -> str:
  """Writes report.md / report.csv: the default estimator per task, BMI beside it.

  Sections: the benchmark-family suite (seed ``config.seeds[0]``; truth,
  estimate, interval, covered, seconds, BMI's InfoNCE estimate and seconds
  on the same samples), the high-MI tasks (15 % tolerance) and the coverage
  of the interval over ``config.coverage_seeds`` per coverage task.
  """
  dc, db = config.default_critic, config.default_bound
  seed = config.seeds[0]
  bmi = _bmi(config.get('bmi_results', ''))
  lines, csv_rows = [], []
  coverage = {}                    # task -> coverage_stats over the repetitions
  for t in config.get('coverage_tasks', ()):
    g = [rows[k] for k in (_key(t, dc, db, s) for s in config.coverage_seeds)
         if k in rows and 'interval_lo' in rows[k]]
    if g:
      coverage[t] = coverage_stats(g)

  def table(names, accurate, title):
    out, hits, ours_s, bmi_s, bmi_hits = [], [], 0.0, 0.0, []
    for t in names:
      r = rows.get(_key(t, dc, db, seed))
      if r is None:
        continue
      b = bmi.get(t)
      ok = accurate(r['estimate'], r['true_mi'])
      hits.append(ok)
      lo, hi = r.get('interval_lo', math.nan), r.get('interval_hi', math.nan)
      row = dict(task=t, true_mi=r['true_mi'], estimate=r['estimate'],
                 interval_lo=lo, interval_hi=hi,
                 covered=int(lo <= r['true_mi'] <= hi), accurate=int(ok),
                 seconds=r['seconds'], steps=r['steps_run'],
                 bmi_estimate=b['estimate'] if b else '',
                 bmi_accurate=int(accurate(b['estimate'], r['true_mi'])) if b else '',
                 bmi_seconds=b['seconds'] if b else '',
                 coverage=coverage[t]['coverage'] if t in coverage else '',
                 repetitions=coverage[t]['n'] if t in coverage else '')
      csv_rows.append(row)
      if b:
        ours_s += r['seconds']
        bmi_s += b['seconds']
        bmi_hits.append(accurate(b['estimate'], r['true_mi']))
      out.append(dict(
          task=t, true=f"{r['true_mi']:.3f}",
          est=f"{r['estimate']:.3f}" + ('' if ok else '*'),
          ci=f'[{lo:.3f}, {hi:.3f}]', cov='yes' if row['covered'] else 'no',
          rate=(f"{coverage[t]['coverage']:.0%} of {coverage[t]['n']}"
                if t in coverage else '–'),
          s=f"{r['seconds']:.1f}", steps=str(r['steps_run']),
          bmi=(f"{b['estimate']:.3f}" + ('' if row['bmi_accurate'] else '*'))
          if b else '', bmi_s=f"{b['seconds']:.1f}" if b else ''))
    text = f'\n### {title}\n\n' + runs.markdown_table(
        out, ['task', 'true', 'est', 'ci', 'cov', 'rate', 's', 'steps', 'bmi',
              'bmi_s'],
        headers=['task', 'true MI', 'estimate', f'{config.get("confidence", 0.95):.0%} '
                 'interval', 'covers', 'coverage over repetitions', 'seconds',
                 'steps', 'BMI InfoNCE', 'BMI seconds'])
    text += (f'\nestimate_mi within tolerance: {sum(hits)}/{len(hits)}'
             + (f'; BMI InfoNCE: {sum(bmi_hits)}/{len(bmi_hits)}; time on the '
                f'{len(bmi_hits)} tasks with both: {ours_s:.0f} s vs BMI {bmi_s:.0f} s '
                f'(ratio {ours_s / bmi_s:.2f})' if bmi_hits else '') + '\n')
    return text

  lines.append(
      f'Default estimator (bound={db}, critic={dc}), {config.num_samples} '
      f'samples per task, data and estimator seed {seed}; * marks a miss '
      f'(suite: off by > 10 % and > 0.1 nat; high MI: off by > 15 %).')
  lines.append(table(list(config.tasks), is_accurate,
                     'benchmark-family suite (tolerance 10 % or 0.1 nat)'))
  high = list(config.get('high_mi_tasks', ()))
  if high:
    lines.append(table(high, is_accurate_high_mi, 'high MI (tolerance 15 %)'))
  if coverage:
    cov_rows = [dict(task=t, true=f"{c['truth']:.3f}", n=str(c['n']),
                     coverage=f"{c['coverage']:.0%}",
                     calibration=f"{c['calibration']:.0%}",
                     mean=f"{c['mean']:.3f}", bias=f"{c['bias']:+.3f}",
                     sd=f"{c['sd']:.3f}", half=f"{c['half']:.3f}",
                     verdict=c['verdict']) for t, c in coverage.items()]
    unbiased = [c for c in coverage.values() if c['verdict'] != 'bias dominates']
    median = np.median([c['coverage'] for c in unbiased]) if unbiased else math.nan
    lines.append(
        '\n### coverage of the true MI by the interval, over repetitions '
        '(fresh samples and estimator seed each)\n\n' + runs.markdown_table(
            cov_rows, ['task', 'true', 'n', 'coverage', 'calibration', 'mean',
                       'bias', 'sd', 'half', 'verdict'],
            headers=['task', 'true MI', 'repetitions', 'coverage of the truth',
                     'coverage of the mean estimate', 'mean estimate', 'bias',
                     'sd over reps', 'mean half-width', 'verdict']))
    lines.append(
        f'\nNominal {config.get("confidence", 0.95):.0%} intervals cover the truth '
        f'at >= 90 % on {sum(c["coverage"] >= 0.9 for c in coverage.values())} '
        f'of {len(coverage)} tasks; on the {len(unbiased)} tasks where the bias '
        f'is within one standard error of the interval: '
        f'{sum(c["coverage"] >= 0.9 for c in unbiased)} of {len(unbiased)} '
        f'(median {median:.0%}). The intervals hold the mean estimate over '
        f'the repetitions (what the estimator converges to) on '
        f'{sum(c["calibration"] >= 0.9 for c in coverage.values())} of '
        f'{len(coverage)} tasks (median '
        f'{np.median([c["calibration"] for c in coverage.values()]):.0%}).\n'
        '\n"bias dominates": |mean estimate - truth| exceeds the interval\'s '
        'standard error, so no interval centred on this estimator covers at its '
        'nominal rate (InfoNCE with a finite critic is a lower bound: the '
        'interval is one for the bound the critic attains, not for the MI); '
        '"interval too narrow": the spread over repetitions exceeds the '
        'interval\'s standard error by > 20 %.\n')
  runs.write_csv(os.path.join(workdir, 'report.csv'), REPORT_FIELDS, csv_rows)
  text = '\n'.join(lines)
  runs.write_text(os.path.join(workdir, 'report.md'), text)
  return text


REPORT_FIELDS = ('task', 'true_mi', 'estimate', 'interval_lo', 'interval_hi',
                 'covered', 'accurate', 'seconds', 'steps', 'bmi_estimate',
                 'bmi_accurate', 'bmi_seconds', 'coverage', 'repetitions')


def run(config: ml_collections.ConfigDict, workdir: str,
        mesh=None) -> dict[tuple, dict]:
  """Runs this shard's estimates; a single-shard run then writes the tables.

  ``mesh``: the devices every estimate's batches are split over (default:
  all, see ``estimate_mi``). Returns every row of ``workdir``, keyed by task,
  critic, bound and seed.
  """
  os.makedirs(workdir, exist_ok=True)
  rows = estimate_all(config, workdir, mesh)
  if config.num_shards == 1:
    print(summarize(config, rows, workdir), flush=True)
    if config.get('report', False):
      print(report(config, rows, workdir), flush=True)
  return rows


if __name__ == '__main__':
  runs.main(run, __file__)
