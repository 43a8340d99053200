"""Lazy and deprecated module attributes: names resolved on first use (PEP 562).

``import regjax`` stays the core alone: the names of the outer layers (``regjax.sweep``,
``regjax.Trainer``, ...) and the harness's own (``regjax.experiment.Trainer``) import their
module when first touched, so a user pays only for what they use.

A deprecated name stays reachable the same way, but every access warns (it is never
cached in the module) and it is left out of ``dir()``, which drives tab completion, so
new code is not offered it. The modules that have such names keep them in a
``_DEPRECATED`` table ``name -> (module, attribute, what to use instead)``, which
``tests/test_api_standard.py`` also reads.

Examples:
  >>> import warnings
  >>> from regjax import _lazy
  >>> getattr_, dir_ = _lazy.attach("demo", {"sqrt": ("math", "sqrt")}, {},
  ...                               deprecated={"root": ("math", "sqrt", "demo.sqrt")})
  >>> getattr_("sqrt")(9.0), dir_()
  (3.0, ['sqrt'])
  >>> with warnings.catch_warnings(record=True) as caught:
  ...   warnings.simplefilter("always")
  ...   getattr_("root")(4.0)
  2.0
  >>> str(caught[0].message)
  'demo.root is deprecated: use demo.sqrt instead.'
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(module: str, names: Mapping[str, tuple[str, str | None]], namespace: dict[str, Any],
           deprecated: Mapping[str, tuple[str, str, str]] | None = None,
           ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
  """A module's ``__getattr__`` and ``__dir__`` for lazily imported and deprecated names.

  Args:
    module: the module's name, for the messages.
    names: name -> (module to import, attribute of it, or None for the module itself).
    namespace: the module's ``globals()``; a loaded name is cached there.
    deprecated: name -> (module, attribute, what to use instead): reading the name warns
      with a ``DeprecationWarning`` every time and returns the attribute.

  Returns:
    ``(__getattr__, __dir__)``.
  """
  deprecated = dict(deprecated or {})

  def __getattr__(name: str) -> Any:
    if name in deprecated:
      module_name, attribute, instead = deprecated[name]
      warnings.warn(f"{module}.{name} is deprecated: use {instead} instead.",
                    DeprecationWarning, stacklevel=2)
      return getattr(importlib.import_module(module_name), attribute)
    if name not in names:
      raise AttributeError(f"module {module!r} has no attribute {name!r}")
    module_name, loaded_attribute = names[name]
    loaded = importlib.import_module(module_name)
    value = loaded if loaded_attribute is None else getattr(loaded, loaded_attribute)
    namespace[name] = value
    return value

  def __dir__() -> list[str]:
    return sorted(set(namespace) | set(names))

  return __getattr__, __dir__
