"""Packages whose names load on first use (PEP 562).

``advfit.data`` and ``advfit.models`` each hold one light module that a sweep's launching
process needs for its up-front checks (``advfit.data.folds``, ``advfit.models.frozen``) next
to modules that import Lightning; importing a submodule runs its package's ``__init__``, so
the package names its exports here instead of importing them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def exports(package: str, where: dict[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``where`` is imported
    from its module (``where[name]``) when first asked for, then kept on the package."""

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
