"""Which of the hot modules run compiled (mypyc) in this installation, for status, bench and logs."""

from __future__ import annotations

import importlib

__all__ = ["HOT_MODULES", "compiled_modules"]

#: Kept in step with ``setup.py``'s list (a test checks that they agree).
HOT_MODULES = (
    "wavemq_edge.uri",
    "wavemq_edge.lru",
)


def compiled_modules() -> list[str]:
    """The hot modules that were imported from a compiled extension rather than their ``.py``."""
    out = []
    for name in HOT_MODULES:
        module = importlib.import_module(name)
        path = getattr(module, "__file__", "") or ""
        if not path.endswith(".py"):
            out.append(name)
    return out
