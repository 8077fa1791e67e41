"""Intake back-pressure: while memory is short, publishers are held back (their sockets are not read).

Two reasons, either of which holds them:

* ``store``: the queue store's unflushed payloads reached its RAM bound (two flushes' worth,
  ``storage/flush_plan.py``). Checked after every write pass (input was just accepted); released as soon
  as flushes moved enough to disk, re-checked every ``RECHECK_S`` while held.
* ``memory``: the budget watch saw ``RssAnon`` reach ``BudgetConfig.memoryBudget`` (``ops/budget.py``);
  released when it is back under 90 % of the budget (or nothing more can be freed by waiting).

Nothing is dropped or refused: a held publisher's requests wait in its socket and TCP slows it down;
what was accepted is in the store. Subscribers (connections that never published) are still read, so
their acknowledgements keep flowing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from ..net.agent_server import AgentServer
from ..ops.logging import RateLimitedLog
from ..storage import QueueStore
from .flusher import Flusher

__all__ = ["IntakeGate"]

log = logging.getLogger("wavemq_edge.server")

#: While held for the store's RAM bound, look again this often (a flush completes meanwhile).
RECHECK_S: Final = 0.01


class IntakeGate:
    def __init__(self, agents: AgentServer, queues: QueueStore, flusher: Flusher) -> None:
        self._agents = agents
        self._queues = queues
        self._flusher = flusher
        self.reasons: set[str] = set()
        #: times publishers were held, and for how long in all (seconds)
        self.holds = 0
        self.held_s = 0.0
        self._since = 0.0
        self._recheck: asyncio.TimerHandle | None = None
        self._closed = False
        self._rate_log = RateLimitedLog(log)

    @property
    def held(self) -> bool:
        return bool(self.reasons)

    def after_pass(self) -> None:
        """After each write pass: start a flush that came due, hold publishers at the store's RAM bound."""
        if self._closed:
            return
        self._flusher.due(asyncio.get_running_loop().time())
        if self._queues.ram_full():
            self._set("store", True)
            if self._recheck is None:
                self._recheck = asyncio.get_running_loop().call_later(RECHECK_S, self._look_again)

    def _look_again(self) -> None:
        self._recheck = None
        self._flusher.due(asyncio.get_running_loop().time())
        if self._queues.ram_full():
            self._recheck = asyncio.get_running_loop().call_later(RECHECK_S, self._look_again)
        else:
            self._set("store", False)

    def hold_for_memory(self, held: bool) -> None:
        """The budget watch's decision (``ServerControls.hold_publishers``)."""
        self._set("memory", held)

    def _set(self, reason: str, on: bool) -> None:
        before = self.held
        if on:
            self.reasons.add(reason)
        else:
            self.reasons.discard(reason)
        if before == self.held:
            return
        self._agents.hold_publishers(self.held)
        if self.held:
            self.holds += 1
            self._since = time.monotonic()
            self._rate_log.log(logging.INFO, f"held:{reason}", asyncio.get_running_loop().time(),
                               "event=publishers_held reason=%s holds=%d", reason, self.holds)
        else:
            self.held_s += time.monotonic() - self._since
            log.debug("event=publishers_resumed reason=%s", reason)

    def close(self) -> None:
        """Shutdown: no more flushes started from here (the shell flushes last)."""
        self._closed = True
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
