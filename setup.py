"""Build hook: compile the hot modules with mypyc where a C compiler works, pure Python otherwise.

Everything else about the package is in ``pyproject.toml``. The compiled modules are the same source
files as the pure-Python ones (the fallback is always there); ``wavemq_edge.compiled()`` tells which
ran. ``WAVEMQ_EDGE_COMPILE`` chooses: ``auto`` (default: compile when mypyc imports and a trial C file
compiles), ``1`` (compile or fail the build), ``0`` (pure Python; ``ci/test``'s editable install uses
this, so an edited ``.py`` is never shadowed by a stale extension in the source tree).
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from setuptools import setup

#: The per-message path (issue: performance): codecs, batches, the URI trie, queue bookkeeping.
HOT_MODULES = [
    "wavemq_edge/uri.py",
    "wavemq_edge/lru.py",
    "wavemq_edge/wire/codec.py",
    "wavemq_edge/wire/fields.py",
    "wavemq_edge/wave/canonical.py",
    "wavemq_edge/wave/envelope.py",
    "wavemq_edge/wave/fields.py",
    "wavemq_edge/wave/ids.py",
    "wavemq_edge/wave/replay.py",
]


def _say(text: str) -> None:
    print(f"wavemq-edge build: {text}", file=sys.stderr)


def _compiler_works() -> bool:
    """True when the platform's C compiler can build a trivial file (no compiler: pure Python)."""
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler
    except ImportError:  # pragma: no cover - very old setuptools
        return False
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <Python.h>\nint wavemq_edge_probe(void) { return 0; }\n")
        compiler = new_compiler()
        customize_compiler(compiler)
        import sysconfig

        try:
            compiler.compile([source], output_dir=tmp, include_dirs=[sysconfig.get_paths()["include"]])
        except Exception as exc:  # CompileError, or no compiler binary at all
            _say(f"no working C compiler ({type(exc).__name__}); installing pure Python")
            return False
    return True


def ext_modules() -> list[Any]:
    mode = os.environ.get("WAVEMQ_EDGE_COMPILE", "auto").strip().lower()
    if mode in ("0", "no", "false", "off"):
        return []
    if mode == "auto" and "editable_wheel" in sys.argv:
        # An in-tree extension would shadow the .py a developer edits: editable installs stay pure.
        _say("editable install; pure Python (WAVEMQ_EDGE_COMPILE=1 to compile anyway)")
        return []
    required = mode in ("1", "yes", "true", "on")
    try:
        from mypyc.build import mypycify
    except ImportError:
        if required:
            raise SystemExit("wavemq-edge build: WAVEMQ_EDGE_COMPILE=1 but mypyc is not installed") from None
        _say("mypyc not available; installing pure Python")
        return []
    if not _compiler_works():
        if required:
            raise SystemExit("wavemq-edge build: WAVEMQ_EDGE_COMPILE=1 but no C compiler works")
        return []
    # The isolated build environment has mypy but not our dependencies: their types are unknown there
    # (Any), which ``mypy --strict`` in CI checks with them installed; the build only needs to compile.
    flags = ["--ignore-missing-imports", "--no-warn-return-any", "--no-warn-unused-ignores"]
    return list(mypycify([*flags, *HOT_MODULES], opt_level="3", debug_level="0", group_name="wavemq_edge_hot"))


setup(ext_modules=ext_modules())
