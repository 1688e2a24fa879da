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

import ml_collections

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
  # Fig. 3's claim: looser critics (a lower test estimate of the trained
  # bound) give a higher probe accuracy than the MLP (concat) critic.
  tschannen.grid_findings(
      workdir, rows, config.reference_critic,
      [('probe_accuracy', 'accuracy (%; differences in points)', 100),
       ('mi_test', 'test estimate (nats)', 1)],
      claim={'probe_accuracy': +1, 'mi_test': -1},
      title='Critics (Tschannen et al. Fig. 3): findings over seeds')
  return summary


if __name__ == '__main__':
  runs.main(run, __file__)
