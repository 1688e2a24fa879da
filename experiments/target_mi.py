"""Target-MI study (Tschannen et al. 2020, Fig. 4a/b): ConvNet vs MLP at equal I_EST.

  python -m experiments.target_mi --config=experiments/configs/target_mi.py:quick \
      --workdir=runs/target_mi_quick

Trains the two-view model with the loss |I_EST - t| once per (t, encoder) of
the config, each in ``--workdir/t<t>_<encoder>`` (a rerun resumes).
``target_mi.png`` (one row per t: I_EST and probe accuracy vs step, one line
per encoder; bands over seeds), ``summary.json`` and ``findings.md`` (each
encoder minus ``config.reference_encoder``, paired by seed) go to --workdir.
"""

import ml_collections

from infomax_jax import runs
from infomax_jax import tschannen


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Every (t, encoder) of ``config``; writes target_mi.png and summary.json."""
  configs, rows = {}, {}
  for target in config.targets:
    row = rows.setdefault(f't = {target:g} nats', {})
    for encoder, kwargs in config.encoders.items():
      name = f't{target:g}_{encoder}'
      configs[name] = runs.override(config, encoder=encoder,
                                    encoder_kwargs=kwargs.to_dict(),
                                    target_mi=float(target))
      row[encoder] = name
  summary = tschannen.run_grid(
      config, workdir, configs,
      title=lambda c: f'{c.encoder}, |{c.bound} - {c.target_mi:g}|')
  path = tschannen.grid_figure(
      workdir, rows, [('mi_test', f'test $I_{{EST}}$ ({config.bound}, nats)'),
                      ('probe_accuracy', 'test accuracy (linear probe)')],
      'target_mi.png', 'Target MI (Tschannen et al. Fig. 4a/b)')
  print(f'wrote {path}', flush=True)
  if config.reference_encoder in config.encoders and len(config.encoders) > 1:
    # Fig. 4a/b's claim: at the same estimated MI (the loss pins it to t), the
    # ConvNet's representation gives a higher probe accuracy than the MLP's.
    tschannen.grid_findings(
        workdir, rows, config.reference_encoder,
        [('probe_accuracy', 'accuracy (%; differences in points)', 100),
         ('mi_test', f'test {config.bound} (nats)', 1)],
        claim={'probe_accuracy': +1},
        title='Target MI (Tschannen et al. Fig. 4a/b): findings over seeds')
  return summary


if __name__ == '__main__':
  runs.main(run, __file__)
