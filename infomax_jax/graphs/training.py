"""What DGI's and InfoGraph's training calls share: a timed ``train.train``.

Both run their task through ``infomax_jax.train.train`` (checkpoints, exact
resume, data parallel over a mesh) in a work folder, or in a temporary folder
deleted afterwards, and report the call's wall, compile and CPU seconds.
"""

import contextlib
import dataclasses
import tempfile
import time
from typing import Any, Optional

import ml_collections

from infomax_jax import runs
from infomax_jax import train as train_lib


@dataclasses.dataclass
class TrainResult:
  """The outcome of a graph model's training call (see its subclasses).

  Attributes:
    losses: training loss of every epoch run.
    train_seconds: wall time of the ``train.train`` call minus compilation
      (the epochs, checkpoints and progress lines).
    compile_seconds: time spent compiling during the call.
    train_cpu_seconds: CPU time of this process during the call (all
      threads, compilation included; unlike wall time, insensitive to other
      load on the machine).
  """
  losses: list[float]
  train_seconds: float
  compile_seconds: float
  train_cpu_seconds: float


def timed_train(config: ml_collections.ConfigDict, task: train_lib.Task,
                workdir: Optional[str], mesh: Any, verbose: bool
                ) -> tuple[train_lib.TrainState, list[dict[str, Any]],
                           tuple[float, float, float]]:
  """``train.train`` in ``workdir`` (a temporary folder if None), timed.

  Args:
    config: the ``train.train`` config.
    task: the task.
    workdir: the run's folder (a rerun resumes from its checkpoints), or None.
    mesh: the ``'data'`` mesh.
    verbose: print progress lines.

  Returns:
    (final state, the run's 'train' records of metrics.jsonl, (train
    seconds, compile seconds, CPU seconds)) as in ``TrainResult``.
  """
  c0, t0, p0 = (train_lib.compile_seconds(), time.perf_counter(),
                time.process_time())
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory())
    state = train_lib.train(config, task, workdir, mesh=mesh, verbose=verbose)
    records = runs.read_metrics(workdir, 'train')
  compile_s = train_lib.compile_seconds() - c0
  times = (time.perf_counter() - t0 - compile_s, compile_s,
           time.process_time() - p0)
  return state, records, times
