"""The write scheduler: one batched write pass after the router has processed a batch of input.

Input on one connection produces output on others (an agent's publish becomes deliveries to every
subscriber and a batch on the uplink; a trunk batch becomes deliveries to local agents). Every
connection with new output marks itself here; one ``call_soon`` later the scheduler lets the core hand
out what is ready (``RouterCore.service``) and then asks every marked connection to write, until none
is left. Agent and trunk connections share this one scheduler, so a pass covers both. After the pass,
``after_pass`` (the server's) runs: input was just accepted, so that is when a flush may have come due and
the store's RAM bound may have been reached (publishers are then held back, ``server/intake.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from ..router import RouterCore

__all__ = ["Transmitter", "WriteScheduler"]


class Transmitter(Protocol):
    """A connection with pending output to write."""

    def transmit(self) -> None: ...


class WriteScheduler:
    def __init__(self, core: RouterCore, after_pass: Callable[[], None] | None = None) -> None:
        self._core = core
        self.after_pass = after_pass
        self._marked: set[Transmitter] = set()
        self._scheduled = False

    def mark(self, conn: Transmitter) -> None:
        self._marked.add(conn)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.write_pending)

    def write_pending(self) -> None:
        """Deliver what is ready, then write every marked connection (and those marked meanwhile)."""
        self._scheduled = False
        self._core.service()
        while self._marked:
            batch = list(self._marked)
            self._marked.clear()
            for conn in batch:
                conn.transmit()
        if self.after_pass is not None:
            self.after_pass()
