"""No test synchronises with a fixed sleep: every wait is on a condition, through tests/waiting.py.

Walks every Python file under tests/ with ``ast`` and fails on a ``time.sleep(...)`` or
``asyncio.sleep(...)`` call (or a bare ``sleep(...)`` imported from either) outside the allowlist below.
An entry names the file and the enclosing function (``Class.method``, ``outer.inner``), so it survives
edits that move lines, and gives its reason. The only reasons that qualify: the pause between two polls
inside the wait helper, and a sleep that *is* the fault a test injects (an outage of a given length, a
random kill moment, a proxy's delay). Anything else waits with ``waiting.wait_until`` /
``waiting.await_until`` on the condition the sleep stood for.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

TESTS = Path(__file__).resolve().parent


class Allowed(NamedTuple):
    reason: str
    #: the file may lose this sleep without the entry going stale (it is another change's to remove)
    optional: bool = False


ALLOWED: dict[tuple[str, str], Allowed] = {
    ("waiting.py", "wait_until"): Allowed("the pause between two polls of the condition"),
    ("waiting.py", "await_until"): Allowed("the pause between two polls of the condition"),
    ("storage/test_storage_crash.py", "_run_and_kill"): Allowed("the random moment of the SIGKILL is the fault"),
    ("tier/test_tier.py", "test_outage_backlog_reaches_the_dr_after_restore.main"):
        Allowed("the uplink outage lasts OUTAGE_S: the injected fault"),
    ("tier/test_tier.py", "test_flapping_link_loses_nothing.main"):
        Allowed("publishes are spread over the link's flaps: the shape of the injected fault"),
    ("tier/fault_proxy.py", "FaultProxy._pipe"): Allowed("the proxy's delay mode is the injected fault", True),
    ("tier/fault_proxy.py", "FaultProxy.flap.run"): Allowed("the link's down and up times are the fault", True),
    ("integration/hostile_agents.py", "_pace"): Allowed("a byte a second and the reopen pause are the attack"),
}

SLEEP_MODULES = frozenset({"time", "asyncio"})


def _sleep_names(tree: ast.Module) -> set[str]:
    """Local names bound to a sleep function: ``from time import sleep [as nap]``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in SLEEP_MODULES:
            names |= {a.asname or a.name for a in node.names if a.name == "sleep"}
    return names


def _module_aliases(tree: ast.Module) -> set[str]:
    """Local names of the time and asyncio modules (``import time as t`` included)."""
    names = set(SLEEP_MODULES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name in SLEEP_MODULES and a.asname}
    return names


def sleeps_in(source: str, filename: str = "<test>") -> list[tuple[int, str]]:
    """(line, enclosing function's qualified name, "" at module level) of each sleep call."""
    tree = ast.parse(source, filename)
    bare, modules = _sleep_names(tree), _module_aliases(tree)
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = (*scope, node.name)
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "sleep" and isinstance(f.value, ast.Name)
                    and f.value.id in modules) or (isinstance(f, ast.Name) and f.id in bare):
                found.append((node.lineno, ".".join(scope)))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, ())
    return found


def test_no_fixed_sleeps_outside_the_allowlist() -> None:
    offenders, used = [], set()
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS).as_posix()
        for line, scope in sleeps_in(path.read_text(), rel):
            if (rel, scope) in ALLOWED:
                used.add((rel, scope))
            else:
                offenders.append(f"tests/{rel}:{line} in {scope or '<module>'}")
    assert not offenders, ("fixed sleeps used to synchronise; wait on the condition instead "
                           "(tests/waiting.py), or allowlist a fault injection with its reason:\n"
                           + "\n".join(offenders))
    stale = [key for key, entry in ALLOWED.items() if key not in used and not entry.optional]
    assert not stale, f"allowlist entries with no sleep left (remove them): {stale}"


def test_the_guard_sees_every_spelling() -> None:
    source = '''
import asyncio
import time as t
from time import sleep
from asyncio import sleep as nap

def f():
    t.sleep(1)
    sleep(1)

class C:
    async def m(self):
        await asyncio.sleep(0.5)
        await nap(1)
        def inner():
            time_sleep = 1  # not a call
        return time_sleep
'''
    assert sleeps_in(source) == [(8, "f"), (9, "f"), (13, "C.m"), (14, "C.m")]
