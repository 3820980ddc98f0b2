"""Names that load on first use, so that ``import embtune`` (and ``embtune --help``) stays fast: the one helper every
package's ``__init__`` uses instead of writing its own ``__getattr__``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """(``__getattr__``, ``__all__``) for ``package``: ``exports`` maps a public name to the module that defines it,
    absolute (``embtune.api``) or relative to the package (``metrics``).

    >>> __getattr__, __all__ = lazy_exports(__name__, {"Metrics": "metrics"})
    """
    def module_of(name: str) -> str:
        where = exports[name]
        return where if where.startswith("embtune") else f"{package}.{where}"

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(module_of(name)), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)
