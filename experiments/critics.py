"""Critic-architecture study (Tschannen et al. 2020, Fig. 3).

  python -m experiments.critics --config=experiments/configs/critics.py:quick \
      --workdir=runs/critics_quick

Trains the two-view model with MLP encoders once per (bound, critic) of the
config, each in ``--workdir/<bound>_<critic>`` (a rerun resumes). Every
evaluation also records the test I_NWJ of the same critic (``nwj_test``).
``critics.png`` (rows: trained bound; panels: probe accuracy, test estimate of
the trained bound, test I_NWJ; one line per critic; mean and 95 % band over
the seeds with ``--config.num_seeds=N``), ``summary.json`` and ``findings.md``
go to --workdir. ``findings.md`` holds the paper's claim as numbers: per
trained bound, each critic's final accuracy and test estimate, and the
difference of every other critic from ``config.reference_critic`` (default
'concat', the MLP critic), paired by seed, as mean ± 95 % interval.
"""

import json
import os

import ml_collections
import numpy as np

from infomax_jax import runs
from infomax_jax import tschannen


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Every (bound, critic) of ``config``; writes critics.png and summary.json."""
  configs, rows = {}, {}
  for bound in config.bounds:
    rows[f'trained with {bound}'] = {}
    for critic, kwargs in config.critics.items():
      name = f'{bound}_{critic}'
      configs[name] = runs.override(config, bound=bound, critic=critic,
                                    critic_kwargs=kwargs.to_dict())
      rows[f'trained with {bound}'][critic] = name
  summary = tschannen.run_grid(
      config, workdir, configs,
      title=lambda c: f'MLP encoders, {c.critic} critic, {c.bound}')
  path = tschannen.grid_figure(
      workdir, rows, [('probe_accuracy', 'test accuracy (linear probe)'),
                      ('mi_test', 'test estimate of the trained bound'),
                      ('nwj_test', 'test $I_{NWJ}$ (nats)')],
      'critics.png', 'Critics (Tschannen et al. Fig. 3)')
  print(f'wrote {path}', flush=True)
  findings(workdir, config)
  return summary


def _final_by_seed(run_dir: str) -> dict[str, dict]:
  """The last evaluation of every seed of a (possibly batched) run."""
  return {seed: records[-1] for seed, records in
          runs.replicas.by_seed(runs.read_metrics(run_dir, 'eval')).items()}


def findings(workdir: str, config: ml_collections.ConfigDict) -> dict:
  """Fig. 3's claim over seeds: looser critics (lower test estimate of the
  trained bound) give higher probe accuracy than the reference critic.

  Writes ``findings.md`` / ``findings.json``; differences are paired by seed
  (replica r of every run has seed ``config.seed + r``).
  """
  reference = config.get('reference_critic', 'concat')
  if reference not in config.critics:
    raise ValueError(f'config.reference_critic: {reference!r} is not one of the '
                     f'critics {sorted(config.critics.keys())}')
  fmt = runs.replicas.format_interval
  out, lines = {}, []
  for bound in config.bounds:
    finals = {c: _final_by_seed(os.path.join(workdir, f'{bound}_{c}'))
              for c in config.critics}
    seeds = sorted(set.intersection(*(set(f) for f in finals.values())))
    lines += [f'## trained with {bound} ({len(seeds)} seed(s), step '
              f'{finals[reference][seeds[0]]["step"]}; mean ± 95 % interval)', '',
              '| critic | probe accuracy (%) | test estimate (nats) |', '|---|---|---|']
    values = {c: {k: np.array([finals[c][s][k] for s in seeds])
                  for k in ('probe_accuracy', 'mi_test')} for c in config.critics}
    for critic, v in values.items():
      lines.append(f'| {critic} | {fmt(v["probe_accuracy"], 100)} | {fmt(v["mi_test"])} |')
    lines.append('')
    out[bound] = {'seeds': seeds, 'critics': {
        c: {k: x.tolist() for k, x in v.items()} for c, v in values.items()}}
    for critic in config.critics:
      if critic == reference:
        continue
      d_acc = values[critic]['probe_accuracy'] - values[reference]['probe_accuracy']
      d_mi = values[critic]['mi_test'] - values[reference]['mi_test']
      mean_acc, half_acc, _ = runs.replicas.interval(d_acc * 100)
      mean_mi, half_mi, _ = runs.replicas.interval(d_mi)
      holds = (mean_acc - half_acc > 0) and (mean_mi + half_mi < 0)
      lines.append(f'- {critic} − {reference}: accuracy {fmt(d_acc, 100)} points, '
                   f'test estimate {fmt(d_mi, 1, 3)} nats — '
                   + ('looser and better: the claim holds at 95 %' if holds else
                      'the claim (lower estimate, higher accuracy) is not established at 95 %'))
      out[bound][f'{critic}-{reference}'] = {
          'accuracy_points': [mean_acc, half_acc], 'estimate_nats': [mean_mi, half_mi],
          'holds': bool(holds)}
    lines.append('')
  text = '# Critics (Tschannen et al. Fig. 3): findings over seeds\n\n' + '\n'.join(lines)
  runs.write_text(os.path.join(workdir, 'findings.md'), text)
  runs.write_text(os.path.join(workdir, 'findings.json'), json.dumps(out, indent=1))
  print(text, flush=True)
  return out


if __name__ == '__main__':
  runs.main(run, __file__)
