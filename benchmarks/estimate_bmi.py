"""BMI's InfoNCE at its defaults on our task samples: the time and accuracy anchor.

Two steps, two environments (BMI pins an old JAX, so it lives in its own venv;
none of BMI's code is in this repository):

  # 1. in this project's venv: write the samples (seed 0, 10 000 pairs per task)
  python -m benchmarks.estimate_bmi --dump=/tmp/bmi_samples
  # 2. in a venv with `pip install benchmark-mi` (plus jax==0.4.33 jaxlib==0.4.33:
  #    its equinox 0.10 fails on jax >= 0.4.34): run BMI's estimator
  /tmp/bmi_venv/bin/python benchmarks/estimate_bmi.py --run=/tmp/bmi_samples

Step 2 fits ``bmi.estimators.InfoNCEEstimator()`` with its defaults (batch
256, at most 10 000 steps, MLP critic (16, 8), Adam 0.1, half the samples
held out, test every 250 steps with early stopping, standardised inputs) on
each task's samples and appends one JSON line per task to
``<dir>/bmi_infonce.jsonl``: task, true MI, BMI's estimate, wall seconds of
``estimate`` (its compilation included, as a user sees it). The estimators
experiment (``config.bmi_results``) reads that file into its table.

Side by side in one command (issue 19's time ratio: both on the same samples,
back to back, with ``uptime`` before and after):

  python -m benchmarks.estimate_bmi --compare=/tmp/i19_compare \
      --bmi_python=/tmp/bmi_venv/bin/python [--coverage_from=COVERAGE_WORKDIR]

dumps the samples into a fresh folder, runs the estimators experiment's
``check`` variant on them (``<dir>/ours``), then BMI's InfoNCE, then writes
the report (``<dir>/ours/report.md``) with BMI's columns and prints it: the
tasks within tolerance and the time ratio (ours / BMI on the 21 suite tasks,
compilation included on both sides; BMI skips the high-MI tasks there, to
keep the run under 15 minutes on a 2-core CPU).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np


def dump(directory: str, num_samples: int = 10_000, seed: int = 0,
         high_mi: bool = True) -> None:
  """Writes <directory>/<i>.npz (x, y, task, true_mi) for the suite (and high-MI) tasks."""
  import jax  # pylint: disable=g-import-not-at-top

  from infomax_jax import distributions  # pylint: disable=g-import-not-at-top
  os.makedirs(directory, exist_ok=True)
  names = [*distributions.TASKS, *(distributions.HIGH_MI_TASKS if high_mi else ())]
  for i, name in enumerate(names):
    task = distributions.get_task(name)
    x, y = task.sample(jax.random.key(seed), num_samples)
    np.savez(os.path.join(directory, f'{i:03d}.npz'), x=np.asarray(x),
             y=np.asarray(y), task=name, true_mi=task.mutual_information,
             seed=seed)
  print(f'wrote {len(names)} tasks to {directory}')


def run(directory: str) -> None:
  """Runs BMI's InfoNCE (defaults) on every dumped task not yet in the results."""
  from bmi.estimators import InfoNCEEstimator  # pylint: disable=g-import-not-at-top
  out = os.path.join(directory, 'bmi_infonce.jsonl')
  done = set()
  if os.path.exists(out):
    with open(out) as f:
      done = {json.loads(line)['task'] for line in f if line.strip()}
  for name in sorted(n for n in os.listdir(directory) if n.endswith('.npz')):
    data = np.load(os.path.join(directory, name))
    task = str(data['task'])
    if task in done:
      continue
    estimator = InfoNCEEstimator(verbose=False)
    t0 = time.perf_counter()
    estimate = float(estimator.estimate(data['x'], data['y']))
    seconds = time.perf_counter() - t0
    row = dict(task=task, true_mi=float(data['true_mi']), estimate=estimate,
               seconds=seconds, seed=int(data['seed']), estimator='bmi_infonce')
    with open(out, 'a') as f:
      f.write(json.dumps(row) + '\n')
    print(f'{task:45s} true {row["true_mi"]:.3f}  BMI InfoNCE {estimate:.3f}  '
          f'{seconds:.1f} s', flush=True)


def _uptime() -> str:
  try:
    return subprocess.run(['uptime'], capture_output=True, text=True,
                          check=False).stdout.strip()
  except OSError:
    return 'load: %.2f %.2f %.2f' % os.getloadavg()


def _ours(root: str, directory: str, variant: str) -> list[str]:
  return [sys.executable, '-m', 'experiments.estimators',
          f'--config=experiments/configs/estimators.py:{variant}',
          f'--workdir={os.path.join(directory, "ours")}',
          f'--config.bmi_results={os.path.join(directory, "bmi_infonce.jsonl")}']


def _copy_repetitions(source: str, workdir: str) -> int:
  """Copies the coverage run's results*.jsonl from ``source`` into ``workdir``
  as results.coverage-*.jsonl (read before results.jsonl, which wins)."""
  names = [n for n in os.listdir(source)
           if n.startswith('results') and n.endswith('.jsonl')]
  if not names:
    raise SystemExit(f'no results*.jsonl in {source}: run the coverage variant '
                     'there first')
  for name in names:
    shutil.copyfile(os.path.join(source, name),
                    os.path.join(workdir, f'results.coverage-{name[8:]}'))
  return len(names)


def compare(directory: str, bmi_python: str, variant: str = 'check',
            coverage_from: str = '') -> None:
  """Ours (the estimators experiment's ``variant``) then BMI, same samples.

  ``coverage_from``: a workdir of the ``coverage`` variant (its repetitions,
  possibly as shard files); they are copied in after the timed runs and the
  report adds the coverage column (the timed seed-0 rows stay).
  """
  if os.path.exists(os.path.join(directory, 'bmi_infonce.jsonl')):
    raise SystemExit(f'{directory} already holds BMI results: use a fresh folder')
  if coverage_from and not os.path.isdir(coverage_from):
    raise SystemExit(f'--coverage_from={coverage_from} is not a folder')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  ours = _ours(root, directory, variant)
  print('before:', _uptime(), flush=True)
  dump(directory, high_mi=False)   # BMI on the 21 suite tasks (the ratio's)
  t0 = time.perf_counter()
  subprocess.run(ours, cwd=root, check=True, stdout=subprocess.DEVNULL)
  t1 = time.perf_counter()
  print('ours done:', _uptime(), f'({t1 - t0:.0f} s wall, process start '
        'included)', flush=True)
  subprocess.run([bmi_python, os.path.join(root, 'benchmarks', 'estimate_bmi.py'),
                  f'--run={directory}'], cwd=root, check=True)
  t2 = time.perf_counter()
  print('BMI done:', _uptime(), f'({t2 - t1:.0f} s wall)', flush=True)
  if coverage_from:
    _copy_repetitions(coverage_from, os.path.join(directory, 'ours'))
    ours = _ours(root, directory, 'coverage')
  # Every estimate is done: this only writes report.md with BMI's columns.
  out = subprocess.run(ours, cwd=root, check=True, capture_output=True, text=True)
  print(out.stdout[out.stdout.find('Default estimator'):], flush=True)
  print('after:', _uptime(), flush=True)


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dump', help='write task samples to this folder')
  parser.add_argument('--run', help="run BMI's InfoNCE on this folder's samples")
  parser.add_argument('--compare', help='fresh folder: dump, run ours, run BMI, '
                      'report the ratio')
  parser.add_argument('--coverage_from', default='',
                      help='with --compare: a coverage-variant workdir whose '
                      'repetitions add the coverage column to the report')
  parser.add_argument('--bmi_python', default='/tmp/bmi_venv/bin/python',
                      help="the python of a venv with BMI (benchmark-mi)")
  args = parser.parse_args()
  if args.compare:
    compare(args.compare, args.bmi_python, coverage_from=args.coverage_from)
  if args.dump:
    dump(args.dump)
  if args.run:
    run(args.run)
