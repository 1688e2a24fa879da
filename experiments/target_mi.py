"""Target-MI study (Tschannen et al. 2020, Fig. 4a/b): ConvNet vs MLP at equal I_EST.

  python -m experiments.target_mi --config=experiments/configs/target_mi.py:quick \
      --workdir=runs/target_mi_quick

Trains the two-view model of ``infomax_jax.twoview`` with the loss
|I_EST - t| once per (t, encoder) of the config, sequentially, each in
``--workdir/t<t>_<encoder>`` (a rerun resumes). ``target_mi.png`` (one row
per t: I_EST and probe accuracy vs step, one line per encoder) and
``summary.json`` go to --workdir.
"""

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from experiments import critics as critics_experiment


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Every (t, encoder) of ``config``; writes target_mi.png and summary.json."""
  runs, rows = {}, {}
  for target in config.targets:
    row = f't = {target:g} nats'
    rows[row] = {}
    for encoder, kwargs in config.encoders.items():
      name = f't{target:g}_{encoder}'
      runs[name] = critics_experiment.override(
          config, encoder=encoder, encoder_kwargs=kwargs.to_dict(),
          target_mi=float(target))
      rows[row][encoder] = name
  summary = critics_experiment.run_grid(
      config, workdir, runs,
      title=lambda c: f'{c.encoder}, |{c.bound} - {c.target_mi:g}|')
  path = critics_experiment.plot_grid(
      workdir, rows, [('mi_test', f'test $I_{{EST}}$ ({config.bound}, nats)'),
                      ('probe_accuracy', 'test accuracy (linear probe)')],
      'target_mi.png', 'Target MI (Tschannen et al. Fig. 4a/b)')
  print(f'wrote {path}', flush=True)
  return summary


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  # Flags are defined here, not at import, so that the experiment modules can
  # be imported together (tests, shared helpers).
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/target_mi.py', 'Experiment config.',
      lock_config=True)
  flags.DEFINE_string('workdir', 'runs/target_mi', 'Output folder.')
  app.run(main)
