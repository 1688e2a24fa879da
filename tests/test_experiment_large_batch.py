"""experiments/large_batch.py and large_batch_mnist.py on one device: configs, tables.

The whole experiment runs data-parallel on 8 devices in
tests/multidevice_checks.py (``large_batch_experiment_tiny``).
"""

import math

import pytest

from experiments import large_batch
from experiments import large_batch_mnist
from experiments.configs import large_batch as large_batch_config
from experiments.configs import large_batch_mnist as large_batch_mnist_config
from infomax_jax import runs


@pytest.mark.parametrize('variant', large_batch_config.VARIANTS)
def test_config_variants_are_valid(variant):
  config = large_batch_config.get_config(variant)
  runs.validate(config)
  # Every trained K is evaluated; the streaming path is exercised above the threshold.
  assert config.max_train_batch in config.batch_sizes
  assert max(config.batch_sizes) > config.streaming_threshold


def test_unknown_variant_lists_the_valid_ones():
  with pytest.raises(ValueError, match="unknown config variant 'gpu'; valid variants "
                     "are: 'default', 'cpu', 'quick', 'tiny'"):
    large_batch_config.get_config('gpu')


def test_summary_table_one_row_per_k_with_missing_cells():
  config = large_batch_config.get_config('tiny')    # K = 16, 64, 256; trained <= 64
  results = [
      {'mi': 10.0, 'curve': 'trained', 'k': 16, 'estimate': 2.5, 'se': 0.01,
       'method': 'dense', 'critic_batch': 16, 'train_pairs_per_s': 2.5e4},
      {'mi': 10.0, 'curve': 'fixed', 'k': 256, 'estimate': 4.0, 'se': None,
       'method': 'streaming (block 8, ring)', 'critic_batch': 64},
      {'mi': 10.0, 'curve': 'optimal', 'k': 256, 'estimate': 5.421, 'se': 0.001,
       'method': 'streaming (block 8, ring)', 'critic_batch': None},
  ]
  table = large_batch.summary_markdown(results, config)
  rows = [line for line in table.splitlines() if line.startswith('| ')]
  assert rows[0] == ('| K | log K | trained at K | fixed (trained at K = 64) | '
                     'optimal critic | InfoNCE computed | training score pairs/s |')
  assert rows[1:] == [
      f'| 16 | {math.log(16):.2f} | 2.500 ± 0.010 | – | – | dense | 2.5e+04 |',
      f'| 64 | {math.log(64):.2f} | – | – | – | – | – |',
      f'| 256 | {math.log(256):.2f} | – | 4.000 | 5.421 ± 0.001 | '
      'streaming (block 8, ring) | – |',
  ]


# ------------------------------------ two-view MNIST K sweep (issue #18) --

@pytest.mark.parametrize('variant', large_batch_mnist_config.VARIANTS)
def test_mnist_config_variants_are_valid(variant):
  config = large_batch_mnist_config.get_config(variant)
  runs.validate(config)
  # The largest K is the whole (sub)set of training images; GradCache is on.
  assert max(config.batch_sizes) == (config.train_examples or 60000)
  assert 0 < config.embed_chunk < max(config.batch_sizes)


def test_mnist_summary_table():
  config = large_batch_mnist_config.get_config('tiny')
  results = [{'k': 256, 'log_k': math.log(256), 'infonce_train': 4.0, 'gap': 1.545,
              'test_k': 128, 'infonce_test': 3.5, 'probe_accuracy': 0.8125,
              'train_seconds': 2.0},
             {'k': 16, 'log_k': math.log(16), 'infonce_train': 2.0, 'gap': 0.773,
              'test_k': 16, 'infonce_test': 1.9, 'probe_accuracy': 0.5,
              'train_seconds': 1.0}]
  rows = [line for line in large_batch_mnist.summary_markdown(results, config).splitlines()
          if line.startswith('| ')]
  assert rows[1:] == ['| 16 | 2.77 | 2.000 | 0.773 | 16 | 1.900 | 0.5000 | 1 |',
                      '| 256 | 5.55 | 4.000 | 1.545 | 128 | 3.500 | 0.8125 | 2 |']


@pytest.mark.slow
def test_mnist_tiny_run_is_bounded_by_log_k(mnist_dir, tmp_path):
  config = large_batch_mnist_config.get_config('tiny')
  config.data_dir = str(mnist_dir)
  results = large_batch_mnist.run(config, str(tmp_path))
  assert [r['k'] for r in results] == list(config.batch_sizes)
  for r in results:
    assert 0.0 < r['infonce_train'] <= r['log_k']
    assert 0.1 < r['probe_accuracy'] <= 1.0
  # A rerun reads results.jsonl instead of training again.
  assert large_batch_mnist.run(config, str(tmp_path)) == results
