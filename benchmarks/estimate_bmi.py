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
"""

import argparse
import json
import os
import time

import numpy as np


def dump(directory: str, num_samples: int = 10_000, seed: int = 0) -> None:
  """Writes <directory>/<i>.npz (x, y, task, true_mi) for the suite and high-MI tasks."""
  import jax  # pylint: disable=g-import-not-at-top

  from infomax_jax import distributions  # pylint: disable=g-import-not-at-top
  os.makedirs(directory, exist_ok=True)
  names = [*distributions.TASKS, *distributions.HIGH_MI_TASKS]
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


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dump', help='write task samples to this folder')
  parser.add_argument('--run', help="run BMI's InfoNCE on this folder's samples")
  args = parser.parse_args()
  if args.dump:
    dump(args.dump)
  if args.run:
    run(args.run)
