"""What the asyncio glue of every sans-I/O session shares (agents, MQTT devices): one loop timer at the
session's next deadline, and writing what the session produced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["SessionOutput", "rearm", "transmit"]


class SessionOutput(Protocol):
    @property
    def closing(self) -> bool: ...

    def bytes_to_send(self) -> bytes: ...


def rearm(timer: asyncio.TimerHandle | None, timer_at: float, deadline: float | None,
          callback: Callable[[], None]) -> tuple[asyncio.TimerHandle | None, float]:
    """The timer for ``deadline`` (none when ``None``). A timer already due earlier is kept: it fires,
    finds nothing due and is re-armed (cheaper than re-arming on every input of a streaming peer)."""
    if deadline is None:
        if timer is not None:
            timer.cancel()
        return None, timer_at
    if timer is not None:
        if timer_at <= deadline:
            return timer, timer_at
        timer.cancel()
    return asyncio.get_running_loop().call_at(deadline, callback), deadline


def transmit(session: SessionOutput | None, transport: asyncio.Transport | None) -> None:
    """Write what ``session`` produced; close the transport once the session has closed."""
    if session is None or transport is None or transport.is_closing():
        return
    data = session.bytes_to_send()
    if data:
        transport.write(data)
    if session.closing:
        transport.close()
