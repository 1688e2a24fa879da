"""End-to-end smoke test of the invertible-encoder experiment on real MNIST."""

import json
import os

import numpy as np
import pytest

from experiments.configs import invertible as invertible_config
from infomax_jax import runs
from infomax_jax import tschannen


@pytest.mark.slow
def test_tiny_run_writes_outputs_and_resumes(mnist_dir, tmp_path):
  config = invertible_config.get_config('tiny')
  config.data_dir = str(mnist_dir)
  workdir = str(tmp_path / 'run')
  tschannen.run(config, workdir, title='tiny', filename='invertible.png')

  for name in ('metrics.jsonl', 'baselines.json', 'invertible.png',
               'timing.json'):
    assert os.path.isfile(os.path.join(workdir, name)), name
  evals = runs.read_metrics(workdir, 'eval')
  assert [r['step'] for r in evals] == [0, config.num_steps]
  with open(os.path.join(workdir, 'baselines.json')) as f:
    baselines = json.load(f)['baselines']
  # Linear probe on top-half pixels of real MNIST (Tschannen et al.: ~0.83-0.85).
  assert 0.82 < baselines['baseline_noisy_pixels'] < 0.87
  assert 0.82 < baselines['baseline_clean_pixels'] < 0.87
  # At init the flow is ~ a permutation: its probe matches the clean pixels.
  assert abs(evals[0]['probe_accuracy'] - baselines['baseline_clean_pixels']) < 0.01
  # InfoNCE estimates are below log K.
  assert all(r['mi_train'] <= np.log(config.batch_size) for r in evals)
  train_records = runs.read_metrics(workdir, 'train')
  assert train_records[-1]['mi'] > train_records[0]['mi']   # it learns

  # Rerunning the same command resumes from the final checkpoint: no new steps.
  all_records = runs.read_metrics(workdir)
  tschannen.run(config, workdir, title='tiny', filename='invertible.png')
  assert runs.read_metrics(workdir) == all_records
  assert runs.read_metrics(workdir, 'train') == train_records
  timing = runs.read_timing(workdir)['train']
  assert timing['steps'] == config.num_steps and timing['segments'] == 1
