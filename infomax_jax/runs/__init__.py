"""The run layer: what every experiment does around its model, written once.

* ``metrics``: one schema of ``metrics.jsonl`` (step, split, name -> value)
  mirrored to TensorBoard events; the progress line; the non-finite check.
* ``timing``: one ``timing.json`` per run folder, accumulated over resumes.
* ``tables``: CSV files and Markdown tables.
* ``plots``: figure helpers (panels, interval bands, percentile bands).
* ``config``: config copies with overrides; ``validate``, every field checked
  before any work.
* ``workdir``: the run folder's lock and pinned config.
* ``checkpoints``: checksummed, finite checkpoints with fallback.
* ``cli``: ``main(run, __file__)``, the entry point of every experiment.
"""

from infomax_jax.runs import plots
from infomax_jax.runs import workdir
from infomax_jax.runs import tables
from infomax_jax.runs.cli import main, quiet_orbax
from infomax_jax.runs.checkpoints import CheckpointError
from infomax_jax.runs.checkpoints import Checkpoints
from infomax_jax.runs.config import override, run_dir, to_json, validate
from infomax_jax.runs.metrics import (MetricWriter, Progress, check_finite,
                                      read_metrics, series, to_python)
from infomax_jax.runs.tables import (append_csv, markdown_table, read_csv,
                                     write_csv, write_text)
from infomax_jax.runs.timing import add_time, read_timing
