"""The package's shape as a contract: no function over ``MAX_FUNCTION_LINES``, no module over
``MAX_MODULE_LINES`` (the import layers are checked by ``lint-imports`` in ci/test).

80 lines is what still fits on one screen with its docstring; a longer function has always turned out
to hold two steps that read better named. Modules past ~500 lines were the rooms where newcomers got
lost; a module that must exceed the bound is listed in ``OVERSIZED`` with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wavemq_edge"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 530
#: Modules allowed past the bound, each with the most lines it may have and the reason (none today).
OVERSIZED: dict[str, int] = {}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_function_is_longer_than_the_bound() -> None:
    long: list[str] = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} has {n} lines")
    assert not long, "functions over the bound:\n" + "\n".join(long)


def test_no_module_is_longer_than_the_bound() -> None:
    big: list[str] = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        n = len(path.read_text().splitlines())
        if n > OVERSIZED.get(rel, MAX_MODULE_LINES):
            big.append(f"{rel} has {n} lines")
    assert not big, "modules over the bound:\n" + "\n".join(big)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    src = "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    node = ast.parse(src).body[0]
    assert isinstance(node, ast.FunctionDef) and (node.end_lineno or 0) - node.lineno + 1 > MAX_FUNCTION_LINES
