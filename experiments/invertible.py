"""Invertible-encoder experiment (Tschannen et al. 2020, Fig. 1a/b).

  python -m experiments.invertible --config=experiments/configs/invertible.py:quick \
      --workdir=runs/invertible_quick

Writes metrics.jsonl (+ TensorBoard events), timing.json, baselines.json,
checkpoints/ and invertible.png to --workdir; rerunning the same command
resumes from the last checkpoint.
"""

from infomax_jax import runs
from infomax_jax import tschannen


def run(config, workdir: str):
  """Two RealNVP encoders, a bilinear critic: I_EST stays, accuracy rises."""
  return tschannen.run(
      config, workdir, filename='invertible.png',
      title=f'RealNVP encoders, {config.bound} '
            f'({config.encoder_kwargs.num_couplings} couplings)')


if __name__ == '__main__':
  runs.main(run, __file__)
