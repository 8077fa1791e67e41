"""Which of the hot modules run compiled (mypyc) in this installation, for status, bench and logs."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["HOT_MODULES", "compiled_modules", "is_compiled"]

#: Kept in step with ``setup.py``'s list (a test checks that they agree).
HOT_MODULES = (
    "wavemq_edge.uri",
    "wavemq_edge.lru",
    "wavemq_edge.wire.codec",
    "wavemq_edge.wire.fields",
    "wavemq_edge.wave.canonical",
    "wavemq_edge.wave.envelope",
    "wavemq_edge.wave.fields",
    "wavemq_edge.wave.ids",
    "wavemq_edge.wave.replay",
)


def compiled_modules() -> list[str]:
    """The hot modules that were imported from a compiled extension rather than their ``.py``."""
    out = []
    for name in HOT_MODULES:
        if is_compiled(importlib.import_module(name)):
            out.append(name)
    return out


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was imported from a compiled extension (its ``Final`` constants are then
    read natively: a test that patches one applies to the pure-Python module only)."""
    return not (getattr(module, "__file__", "") or "").endswith(".py")
