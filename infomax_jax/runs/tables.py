"""CSV files and Markdown tables: one writer each, for every experiment."""

import csv
import os
from typing import Any, Callable, Optional, Sequence, Union

from infomax_jax.runs.files import atomic_open
from infomax_jax.runs.metrics import last_eval
from infomax_jax.runs.timing import seconds

Format = Union[str, Callable[[Any], str], None]


def read_csv(path: str) -> list[dict[str, str]]:
  """Rows of ``path`` as dicts ([] when the file does not exist)."""
  if not os.path.exists(path):
    return []
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def append_csv(path: str, fields: Sequence[str], rows: Sequence[dict]) -> None:
  """Appends ``rows`` (only ``fields``), writing the header when the file is new."""
  new = not os.path.exists(path) or os.path.getsize(path) == 0
  with open(path, 'a', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction='ignore')
    if new:
      writer.writeheader()
    writer.writerows(rows)


def write_csv(path: str, fields: Sequence[str], rows: Sequence[dict]) -> None:
  """Replaces ``path`` with ``rows`` (atomically)."""
  with atomic_open(path, newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)


def _cell(value: Any, fmt: Format) -> str:
  if value is None or value == '':
    return '–'
  if callable(fmt):
    return fmt(value)
  if fmt is not None:
    try:
      return format(float(value), fmt)
    except (TypeError, ValueError):
      return str(value)
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str], *,
                   headers: Optional[Sequence[str]] = None,
                   formats: Optional[dict[str, Format]] = None) -> str:
  """A GitHub Markdown table of ``rows`` (dicts) over ``columns``.

  Args:
    rows: one dict per row; a missing or empty value prints as '–'.
    columns: the keys to show, in order.
    headers: column titles (default: the keys).
    formats: per column, a format spec for floats (e.g. '.3f') or a callable.
  """
  headers = list(headers or columns)
  if len(headers) != len(columns):
    raise ValueError(f'{len(columns)} columns but {len(headers)} headers')
  formats = formats or {}
  lines = ['| ' + ' | '.join(headers) + ' |',
           '|' + '|'.join('---' for _ in columns) + '|']
  for row in rows:
    lines.append('| ' + ' | '.join(_cell(row.get(c), formats.get(c))
                                   for c in columns) + ' |')
  return '\n'.join(lines) + '\n'


def run_row(run_dir: str, fields: Sequence[str], **labels: Any) -> dict[str, Any]:
  """One table row of a finished run: ``labels``, ``train_seconds`` (from
  ``timing.json``) and every other of ``fields`` from its last evaluation
  ('' where absent; floats rounded to 4 digits)."""
  last = last_eval(run_dir)
  row = {**labels, 'train_seconds': round(seconds(run_dir), 1)}
  for field in fields:
    if field not in row:
      value = last.get(field, '')
      row[field] = round(value, 4) if isinstance(value, float) else value
  return row


def write_text(path: str, text: str) -> str:
  """Writes ``text`` to ``path`` (atomically); returns ``path``."""
  with atomic_open(path) as f:
    f.write(text)
  return path
