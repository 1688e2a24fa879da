"""Smoke tests of the Tschannen et al. (2020) Fig. 3 / 4a/b / 4c experiments.

Each experiment runs its tiny config for a few steps and must write its
metrics, summary and PNG; the true MI of the non-i.i.d. setting is derived
here independently of ``experiments.noniid``.
"""

import json

import jax
import numpy as np
import pytest

from experiments import critics as critics_experiment
from experiments import noniid
from experiments import target_mi
from experiments.configs import critics as critics_config
from experiments.configs import noniid as noniid_config
from experiments.configs import target_mi as target_mi_config
from infomax_jax import runs
from infomax_jax import tschannen


def _true_mi_from_covariances(latent_cov, noise_cov) -> float:
  """MI of one pair (x, y) = z + eps from the 2x2 covariance, by Gaussian entropies.

  I = h(x) + h(y) - h(x, y) = 1/2 log(var_x var_y / det Cov) for a Gaussian.
  """
  cov = np.asarray(latent_cov, float) + np.asarray(noise_cov, float)
  return 0.5 * np.log(cov[0, 0] * cov[1, 1] / np.linalg.det(cov))


def test_noniid_true_mi_is_0204_nats():
  config = noniid_config.get_config()
  mi = _true_mi_from_covariances(config.latent_cov, config.noise_cov)
  # Cov = [[2, .4], [.4, 2]]: rho = .2, MI = -1/2 log(1 - .04) = 0.02041.
  np.testing.assert_allclose(mi, -0.5 * np.log(1 - 0.2 ** 2), rtol=1e-12)
  assert round(mi, 4) == 0.0204
  np.testing.assert_allclose(noniid.true_mi(config.latent_cov, config.noise_cov),
                             mi, rtol=1e-12)


@pytest.mark.parametrize('sampling', ['noniid', 'iid'])
def test_sampler_pair_covariance(sampling):
  config = noniid_config.get_config()
  sample = jax.jit(jax.vmap(noniid.make_sampler(
      config.latent_cov, config.noise_cov, sampling, 64)))
  batches = sample(jax.random.split(jax.random.PRNGKey(0), 20000))
  pairs = np.concatenate([batches['x'], batches['y']], -1)   # (20000, 64, 2)
  np.testing.assert_allclose(np.cov(pairs.reshape(-1, 2).T),
                             [[2.0, 0.4], [0.4, 2.0]], atol=0.05)
  # Within a non-i.i.d. batch x - z_x is the noise only: the batch mean of x
  # varies like z_x (variance ~1), not like a mean of 64 i.i.d. draws (2/64).
  batch_mean_var = np.var(pairs[..., 0].mean(1))
  if sampling == 'noniid':
    assert 0.9 < batch_mean_var < 1.1
  else:
    assert batch_mean_var < 0.1


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='2x2'):
    noniid.true_mi([[1.0]], [[1.0, 0.0], [0.0, 1.0]])
  with pytest.raises(ValueError, match='sampling'):
    noniid.make_sampler(((1, 0), (0, 1)), ((1, 0), (0, 1)), 'shuffled', 8)
  for module in (noniid_config, critics_config, target_mi_config):
    with pytest.raises(ValueError, match='variant'):
      module.get_config('huge')
    for variant in ('', 'quick', 'tiny'):
      config = module.get_config(variant)
      assert config.num_steps % config.eval_every == 0, (module, variant)
      assert config.eval_every % config.log_every == 0, (module, variant)


@pytest.mark.slow
def test_noniid_tiny_writes_outputs(tmp_path):
  config = noniid_config.get_config('tiny')
  summary = noniid.run(config, str(tmp_path))
  assert set(summary['runs']) == {'noniid_infonce', 'noniid_nwj', 'iid_infonce',
                                  'iid_nwj'}
  assert _is_png(tmp_path / 'noniid.png')
  with open(tmp_path / 'summary.json') as f:
    assert round(json.load(f)['true_mi'], 4) == 0.0204
  records = runs.read_metrics(str(tmp_path / 'iid_nwj'))
  n, every = config.num_steps, config.log_every
  assert [r['step'] for r in records if r['split'] == 'train'] == list(
      range(every, n + 1, every))
  assert [r['step'] for r in records if r['split'] == 'eval'] == [0, n]
  # The held-out estimate is a mean over eval_batches batches: its std is
  # finite and the summary quotes the last evaluation.
  assert summary['runs']['iid_nwj']['mi_test'] == records[-1]['mi_test']


def _final(run_dir, seed: str, key: str) -> float:
  """The last evaluation's ``key`` of replica ``seed``, read from metrics.jsonl."""
  evals = [json.loads(l) for l in open(run_dir / 'metrics.jsonl')]
  return [r for r in evals if r['split'] == 'eval' and r.get('seed') == seed][-1][key]


@pytest.mark.slow
def test_noniid_seeds_findings(tmp_path):
  config = runs.override(noniid_config.get_config('tiny'), num_seeds=3,
                         bounds=('nwj',))
  noniid.run(config, str(tmp_path))
  found = json.load(open(tmp_path / 'findings.json'))['nwj']
  assert found['seeds'] == ['0', '1', '2']
  diffs = [_final(tmp_path / 'noniid_nwj', s, 'mi_test')
           - _final(tmp_path / 'iid_nwj', s, 'mi_test') for s in found['seeds']]
  mean, half = found['noniid-iid']['mi_test']
  assert mean == pytest.approx(np.mean(diffs))
  # Student t with 2 degrees of freedom: 4.303 standard errors.
  assert half == pytest.approx(4.303 * np.std(diffs, ddof=1) / np.sqrt(3), rel=1e-3)
  assert found['noniid-iid']['holds'] == bool(mean - half > 0)


def _is_png(path) -> bool:
  with open(path, 'rb') as f:
    return f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_critics_tiny_writes_outputs(tmp_path, mnist_dir):
  config = runs.override(
      critics_config.get_config('tiny'), data_dir=str(mnist_dir),
      bounds=('nwj',), train_examples=300, eval_batches=1)
  summary = critics_experiment.run(config, str(tmp_path))
  assert set(summary['runs']) == {'nwj_bilinear', 'nwj_separable', 'nwj_concat'}
  for record in summary['runs'].values():
    # Trained with NWJ: the extra NWJ report scores the same critic on the
    # same fixed test batches, so it is the trained bound's test estimate.
    assert record['nwj_test'] == record['mi_test']
    assert np.isfinite(record['nwj_test'])
  assert _is_png(tmp_path / 'critics.png')


@pytest.mark.slow
def test_critics_seeds_findings_are_paired_differences(tmp_path, mnist_dir):
  """Two seeds vmapped: the figure draws bands and findings.md holds each
  critic minus the reference, per seed, recomputed here from metrics.jsonl."""
  config = runs.override(
      critics_config.get_config('tiny'), data_dir=str(mnist_dir),
      bounds=('nwj',), train_examples=300, eval_batches=1, num_seeds=2)
  critics_experiment.run(config, str(tmp_path))
  assert _is_png(tmp_path / 'critics.png')
  found = json.load(open(tmp_path / 'findings.json'))['trained with nwj']
  assert found['seeds'] == ['0', '1']
  diffs = [100 * (_final(tmp_path / 'nwj_bilinear', s, 'probe_accuracy')
                 - _final(tmp_path / 'nwj_concat', s, 'probe_accuracy')) for s in ('0', '1')]
  mean, half = found['bilinear-concat']['probe_accuracy']
  assert mean == pytest.approx(np.mean(diffs))
  # Student t with 1 degree of freedom: 12.706 standard errors.
  assert half == pytest.approx(12.706 * np.std(diffs, ddof=1) / np.sqrt(2), rel=1e-3)
  assert 'bilinear − concat' in open(tmp_path / 'findings.md').read()


@pytest.mark.slow
def test_target_mi_tiny_writes_outputs(tmp_path, mnist_dir):
  config = runs.override(
      target_mi_config.get_config('tiny'), data_dir=str(mnist_dir),
      train_examples=300)
  summary = target_mi.run(config, str(tmp_path))
  assert set(summary['runs']) == {'t2_convnet', 't2_mlp'}
  assert _is_png(tmp_path / 'target_mi.png')
  evals = [json.loads(l) for l in open(tmp_path / 't2_convnet' / 'metrics.jsonl')
           if '"eval"' in l]
  assert [r['step'] for r in evals] == [0, 4]


def test_target_mi_cpu_variant_keeps_paper_optimisation():
  config = target_mi_config.get_config('cpu')
  paper = target_mi_config.get_config()
  for field in ('batch_size', 'learning_rate', 'optimizer', 'bound', 'critic',
                'targets', 'noise_std'):
    assert config[field] == paper[field], field
  assert config.encoders.to_dict() == paper.encoders.to_dict()
  assert config.train_examples == 10000
  for field in ('eval_every', 'checkpoint_every'):
    assert config.num_steps % config[field] == 0
    assert config[field] % config.log_every == 0


def test_findings_over_seeds_match_hand_intervals(tmp_path):
  """``tschannen.findings`` on a hand-written 3-seed metrics file: each finding
  is the mean ± t(0.975, 2) · s / √3 of the per-seed values (t = 4.303), and
  Fig. 2's log κ percentiles appear when logged."""
  first = dict(step=0, probe_accuracy=0.80, mi_test=0.1, log_cond_p0=0.0,
               log_cond_p100=0.5)
  lasts = [dict(probe_accuracy=0.85, mi_test=4.0, log_cond_p0=1.0, log_cond_p100=3.0),
           dict(probe_accuracy=0.86, mi_test=4.2, log_cond_p0=1.2, log_cond_p100=2.0),
           dict(probe_accuracy=0.84, mi_test=4.1, log_cond_p0=1.4, log_cond_p100=4.0)]
  with open(tmp_path / 'metrics.jsonl', 'w') as f:
    for seed, last in enumerate(lasts):
      f.write(json.dumps(dict(first, split='eval', seed=str(seed))) + '\n')
      f.write(json.dumps(dict(last, step=100, split='eval', seed=str(seed),
                              baseline_noisy_pixels=0.83,
                              log_cond_p50=1.0)) + '\n')   # not at step 0
    f.write(json.dumps(dict(step=100, split='eval', seed='all', probe_accuracy=0.0)) + '\n')
  out = tschannen.findings(str(tmp_path))

  def check(name, values):
    values = np.asarray(values, float)
    half = 4.302652729911275 * values.std(ddof=1) / np.sqrt(3)
    assert out[name]['n'] == 3
    np.testing.assert_allclose([out[name]['mean'], out[name]['ci95']],
                               [values.mean(), half], rtol=1e-9, atol=1e-12)

  check('accuracy rise', [5.0, 6.0, 4.0])                 # points
  check('final accuracy - noisy pixels', [2.0, 3.0, 1.0])
  check('MI change (test)', [3.9, 4.1, 4.0])
  check('log κ change (p0)', [1.0, 1.2, 1.4])
  check('log κ change (p100)', [2.5, 1.5, 3.5])
  check('final log κ (p100)', [3.0, 2.0, 4.0])
  assert 'final accuracy - clean pixels' not in out       # not logged
  assert 'log κ change (p50)' not in out                  # not at every evaluation
  assert out['seeds'] == ['0', '1', '2'] and out['steps'] == [0, 100]
  md = (tmp_path / 'summary.md').read_text()
  assert '- log κ change (p100): 2.50 ± 2.48 (n = 3)\n' in md
