"""Name -> component lookup shared by every config-driven choice (bound, critic, ...)."""

from typing import Any, Mapping


def lookup(table: Mapping[str, Any], name: str, kind: str) -> Any:
  """Returns ``table[name]``; an unknown name raises a ValueError listing valid ones.

  Args:
    table: the registry (name -> component).
    name: the requested name, e.g. ``config.bound``.
    kind: what is being looked up, for the error message (e.g. ``'bound'``).
  """
  if not isinstance(name, str):
    raise TypeError(f'{kind} name must be a str, got {type(name).__name__}: {name!r}')
  try:
    return table[name]
  except KeyError:
    raise ValueError(
        f'unknown {kind} {name!r}; valid {kind}s are: {", ".join(sorted(table))}'
    ) from None
