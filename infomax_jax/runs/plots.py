"""Plotting helpers shared by every experiment's figure (matplotlib, Agg)."""

import os
from typing import Any, Optional, Sequence

import numpy as np
from scipy import stats


def pyplot():
  """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def panels(n: int, *, rows: int = 1, width: float = 5.0, height: float = 3.6,
           squeeze: bool = False):
  """``(fig, axes)`` with ``rows`` × ``ceil(n / rows)`` panels; axes flat."""
  plt = pyplot()
  cols = -(-n // rows)
  fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows),
                           squeeze=False)
  axes = axes.ravel()
  for ax in axes[n:]:
    ax.set_visible(False)
  return fig, (axes[0] if squeeze and n == 1 else axes[:n])


def save(fig, path: str, title: Optional[str] = None, dpi: int = 120) -> str:
  """Adds ``title``, lays out, writes ``path`` and closes ``fig``; returns ``path``."""
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=dpi)
  pyplot().close(fig)
  return path


def mean_interval(samples: Any, confidence: float = 0.95, axis: int = 0):
  """(mean, half-width) of a Student-t ``confidence`` interval over ``axis``.

  With one sample the half-width is 0 (nothing to estimate it from).
  """
  x = np.asarray(samples, dtype=np.float64)
  n = x.shape[axis]
  mean = x.mean(axis=axis)
  if n < 2:
    return mean, np.zeros_like(mean)
  sem = x.std(axis=axis, ddof=1) / np.sqrt(n)
  return mean, sem * stats.t.ppf(0.5 + confidence / 2, n - 1)


def band(ax, x: Sequence[float], samples: Any, *, label: Optional[str] = None,
         color: Optional[str] = None, style: str = '-', confidence: float = 0.95,
         **line_kw):
  """Plots the mean of ``samples`` (R, T) over R runs with its interval band;
  ``line_kw`` (e.g. ``ms``, ``lw``) go to the mean's line."""
  mean, half = mean_interval(samples, confidence)
  (line,) = ax.plot(x, mean, style, label=label, color=color, **line_kw)
  if np.any(half > 0):
    ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2)
  return line


def percentile_bands(ax, x: Sequence[float], curves: Sequence[Sequence[float]],
                     color: str = 'C0') -> None:
  """Shaded bands between symmetric pairs of ascending percentile curves."""
  curves = [np.asarray(c) for c in curves]
  for lo, hi in zip(curves[:len(curves) // 2], curves[::-1]):
    ax.fill_between(x, lo, hi, color=color, alpha=0.2)
  for curve in curves:
    ax.plot(x, curve, '-', lw=0.8, color=color)


def labels(ax, xlabel: str, ylabel: str, legend: bool = False, **legend_kw) -> None:
  """Axis labels (and a legend when asked and there are labelled artists)."""
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if legend and ax.get_legend_handles_labels()[0]:
    ax.legend(**legend_kw)
