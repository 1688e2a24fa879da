"""The run layer: what every experiment does around its model, written once.

* ``metrics``: one schema of ``metrics.jsonl`` (step, split, name -> value)
  mirrored to TensorBoard events; the progress line; the non-finite check.
* ``timing``: one ``timing.json`` per run folder, accumulated over resumes.
* ``files``: ``atomic_open``, the one way a run (re)writes a file.
* ``tables``: CSV files and Markdown tables.
* ``plots``: figure helpers (panels, interval bands, percentile bands).
* ``replicas``: per-seed records of a batched run, their mean and intervals.
* ``config``: config copies with overrides; ``validate``, every field checked
  before any work.
* ``workdir``: the run folder's lock and pinned config.
* ``checkpoints``: checksummed, finite checkpoints with fallback.
* ``cli``: ``main(run, __file__)``, the entry point of every experiment.
"""

from infomax_jax.runs import plots
from infomax_jax.runs import replicas
from infomax_jax.runs import tables
from infomax_jax.runs import workdir
from infomax_jax.runs.checkpoints import CheckpointError
from infomax_jax.runs.checkpoints import Checkpoints
from infomax_jax.runs.cli import main
from infomax_jax.runs.cli import quiet_orbax
from infomax_jax.runs.config import override
from infomax_jax.runs.config import run_dir
from infomax_jax.runs.config import run_names
from infomax_jax.runs.config import to_json
from infomax_jax.runs.config import validate
from infomax_jax.runs.files import atomic_open
from infomax_jax.runs.metrics import MetricWriter
from infomax_jax.runs.metrics import Progress
from infomax_jax.runs.metrics import check_finite
from infomax_jax.runs.metrics import finished
from infomax_jax.runs.metrics import last_eval
from infomax_jax.runs.metrics import read_jsonl
from infomax_jax.runs.metrics import read_metrics
from infomax_jax.runs.metrics import series
from infomax_jax.runs.metrics import to_python
from infomax_jax.runs.tables import append_csv
from infomax_jax.runs.tables import markdown_table
from infomax_jax.runs.tables import read_csv
from infomax_jax.runs.tables import run_row
from infomax_jax.runs.tables import write_csv
from infomax_jax.runs.tables import write_text
from infomax_jax.runs.timing import add_time
from infomax_jax.runs.timing import read_timing
from infomax_jax.runs.timing import seconds
