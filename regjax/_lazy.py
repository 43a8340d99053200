"""Lazy module attributes: names that import their module on first use (PEP 562).

``import regjax`` stays the core alone: the names of the outer layers (``regjax.sweep``,
``regjax.Trainer``, ...) and the harness's own (``regjax.experiment.Trainer``) import their
module when first touched, so a user pays only for what they use.

Examples:
  >>> from regjax import _lazy
  >>> getattr_, dir_ = _lazy.attach("demo", {"sqrt": ("math", "sqrt")}, {})
  >>> getattr_("sqrt")(9.0)
  3.0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(module: str, names: Mapping[str, tuple[str, str | None]],
           namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
  """A module's ``__getattr__`` and ``__dir__`` for lazily imported names.

  Args:
    module: the module's name, for the error message.
    names: name -> (module to import, attribute of it, or None for the module itself).
    namespace: the module's ``globals()``; a loaded name is cached there.

  Returns:
    ``(__getattr__, __dir__)``.
  """

  def __getattr__(name: str) -> Any:
    if name not in names:
      raise AttributeError(f"module {module!r} has no attribute {name!r}")
    module_name, attribute = names[name]
    loaded = importlib.import_module(module_name)
    value = loaded if attribute is None else getattr(loaded, attribute)
    namespace[name] = value
    return value

  def __dir__() -> list[str]:
    return sorted(set(namespace) | set(names))

  return __getattr__, __dir__
