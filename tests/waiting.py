"""The one way tests wait: poll a condition until it holds, bounded in time.

A fixed sleep before an assertion is either too short on a loaded 2-core CI machine (a flaky test) or
too long everywhere else (a slow suite); waiting on the condition the sleep stood for is neither. The
only sleeps in these functions are the pauses between two polls. ``tests/test_no_sleeps.py`` checks
that no other test code sleeps, except where the sleep *is* the fault being injected.

``wait_until`` is for synchronous tests (it blocks the thread); inside a coroutine use
``await_until``, which yields to the loop between polls so the test's own clients keep running.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["POLL_S", "await_until", "wait_until"]

T = TypeVar("T")

#: Pause between two polls: short against the seconds a process test takes, long enough not to load
#: the machine the routers under test run on.
POLL_S = 0.05


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, poll_s: float = POLL_S) -> T:
    """Poll ``condition`` until it returns a truthy value, and return that value; after ``timeout``
    seconds raise AssertionError naming ``what`` (and the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(poll_s)


async def await_until(condition: Callable[[], T | Awaitable[T]], timeout: float, what: str, *,
                      poll_s: float = POLL_S) -> T:
    """``wait_until`` for coroutines: ``condition`` may be a plain function or return an awaitable
    (a status request, a publish that is retried until it is refused)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(poll_s)
