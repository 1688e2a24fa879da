"""Smoke test of experiments/prior_game.py (tiny config) and its measures."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import prior_game
from experiments.configs import prior_game as prior_game_config


def test_prior_game_tiny_writes_summary(tmp_path):
  config = prior_game_config.get_config('tiny')
  summary = prior_game.run(config, str(tmp_path))
  assert sorted(summary) == ['r1_0', 'r1_10']
  saved = json.loads((tmp_path / 'prior_game.json').read_text())
  assert saved == json.loads(json.dumps(summary))
  for run in summary.values():
    for stage in ('initial', 'final'):
      assert 0.0 < run[stage]['w1_prior'] < 0.5
      assert 0.0 <= run[stage]['c2st_accuracy'] <= 1.0
      assert run[stage]['energy_prior'] > 0.0
  assert (tmp_path / 'prior_game.png').stat().st_size > 0
  with pytest.raises(ValueError, match="valid: '', 'tiny'"):
    prior_game_config.get_config('huge')


def test_measures_prior_against_itself_and_a_point_mass():
  config = prior_game_config.get_config('tiny')
  config.c2st_steps = 300
  # Prior samples against the prior: W1 ~ 0, energy ~ 0, C2ST at chance.
  same = jax.random.uniform(jax.random.PRNGKey(3), (4000, 4))
  m = prior_game.measures(config, same, jax.random.PRNGKey(4))
  assert m['w1_prior'] < 0.02 and abs(m['energy_prior']) < 0.02
  assert abs(m['c2st_accuracy'] - 0.5) < 0.05
  # All mass at 1/2: W1 = 1/4 exactly, C2ST separates.
  point = jnp.full((4000, 4), 0.5)
  m = prior_game.measures(config, point, jax.random.PRNGKey(4))
  np.testing.assert_allclose(m['w1_prior'], 0.25, rtol=1e-4)   # float32 sums
  assert m['energy_prior'] > 0.3 and m['c2st_accuracy'] > 0.9
