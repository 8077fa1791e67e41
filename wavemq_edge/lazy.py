"""Lazy package exports (PEP 562): a package ``__init__`` names what it exports, and a name's module is
imported the first time someone asks for it, so that importing one small module of a package (say
``wavemq_edge.client.connection``) or one name (``from wavemq_edge.wave import format_id``) does not load
the whole package (the WAVE store's LMDB, the passphrase KDF, the router's cores).

Usage in a package ``__init__`` (mypy reads the ``TYPE_CHECKING`` imports, and import-linter sees the same
dependencies as before; at run time only the table is built)::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from .ids import format_id
    else:
        __getattr__, __dir__ = lazy_exports(__name__, {".ids": ("format_id",)})

A name, once resolved, is stored in the package's namespace, so later look-ups cost nothing. Spelling
``TYPE_CHECKING = False`` rather than importing it spares ``typing`` (mypy takes any ``TYPE_CHECKING`` as
true); this module imports nothing that is not loaded before any user code, since the command line's
``--help`` imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, tuple[str, ...]]) -> tuple[
        Callable[[str], object], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: ``exports`` maps a relative module name
    (``".ids"``) to the names the package re-exports from it."""
    where = {name: module for module, names in exports.items() for name in names}
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # ``from .module import name``, spelled out: through ``__import__`` (not importlib.import_module)
        # so that ``python -X importtime`` still shows who imported what.
        name_only = module.lstrip(".")
        value = getattr(__import__(name_only, namespace, None, (name,), len(module) - len(name_only)), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    # A name that is also its module's name (``wave.armor.armor``) is resolved now: loading the submodule
    # sets the package's attribute to the module, which would shadow the name once the module is loaded.
    for name, module in where.items():
        if name == module.lstrip("."):
            __getattr__(name)
    return __getattr__, __dir__
