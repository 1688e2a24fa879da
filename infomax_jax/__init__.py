"""infomax_jax: representation learning by mutual-information maximization in JAX.

Public modules: ``bounds`` (MI estimators on score arrays), ``critics`` (Flax
critics producing score matrices). See README.md.
"""

from infomax_jax import bounds
from infomax_jax import critics
from infomax_jax.bounds import (dv, f_divergence, f_divergence_scores, infonce,
                                interpolated, jsd, mine, mine_init, nwj, smile,
                                tuba)
from infomax_jax.critics import make_critic

__version__ = '0.1.0'
