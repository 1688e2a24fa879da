"""CSV helpers shared by the experiments that write tables (dgi, infograph)."""

import csv
import os
from typing import Sequence


def read_csv(path: str) -> list[dict[str, str]]:
  """Rows of ``path`` as dicts ([] when the file does not exist)."""
  if not os.path.exists(path):
    return []
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def append_csv(path: str, fields: Sequence[str], rows: Sequence[dict]) -> None:
  """Appends ``rows``, writing the header first when the file is new or empty."""
  new = not os.path.exists(path) or os.path.getsize(path) == 0
  with open(path, 'a', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    if new:
      writer.writeheader()
    writer.writerows(rows)


def write_csv(path: str, fields: Sequence[str], rows: Sequence[dict]) -> None:
  """Replaces ``path`` with ``rows``."""
  if os.path.exists(path):
    os.remove(path)
  append_csv(path, fields, rows)
