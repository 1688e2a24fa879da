"""Smoke test of experiments/prior_game.py (tiny config)."""

import json

import pytest

from experiments import prior_game
from experiments.configs import prior_game as prior_game_config
from infomax_jax import runs


@pytest.mark.slow
def test_prior_game_tiny_writes_summary(tmp_path):
  config = prior_game_config.get_config('tiny')
  summary = prior_game.run(config, str(tmp_path))
  assert sorted(summary) == ['r1_0', 'r1_10']
  saved = json.loads((tmp_path / 'prior_game.json').read_text())
  assert saved == json.loads(json.dumps(summary))
  for name, run in summary.items():
    evals = runs.read_metrics(str(tmp_path / name), 'eval')
    assert [r['step'] for r in evals] == [0, config.num_steps]
    # The summary quotes the first and last evaluations, measure by measure.
    assert run['initial'] == {k: evals[0][k] for k in prior_game.MEASURES}
    assert run['final'] == {k: evals[-1][k] for k in prior_game.MEASURES}
    # Both runs start from the same generator (same seed): same distances.
    assert run['initial'] == summary['r1_0']['initial']
  assert (tmp_path / 'prior_game.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  with pytest.raises(ValueError, match="valid variants are: '', 'tiny'"):
    prior_game_config.get_config('huge')
