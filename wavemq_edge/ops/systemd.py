"""systemd readiness, status and watchdog over ``$NOTIFY_SOCKET`` (no libsystemd).

Theory of operation. The protocol (sd_notify(3)) is one datagram of ``KEY=VALUE`` lines per message to
the Unix socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``).
The pure part of this module builds those datagrams (``notify_message``) and decides whether the
router is healthy enough to pet the watchdog (``WatchdogPolicy``); the glue (``Notifier``) only sends.

Health is decided from the event loop itself: the watchdog task asks to wake at a fixed interval and
measures how late it woke (loop lag); a loop that is blocked sends nothing at all, and a loop that was
blocked longer than ``lag_max_s`` skips that ping. The flusher counts as dead when one flush (the
fsync, in a worker thread) has been running longer than ``flush_stall_s``: an SD card that hangs in
fsync wedges durability without stopping the loop, and a restart is the only cure we have. Pings go out
at half of ``$WATCHDOG_USEC`` (sd_watchdog_enabled(3) recommends that), so one skipped ping alone never
trips systemd; two in a row do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FLUSH_STALL_S",
    "LOOP_LAG_MAX_S",
    "Notifier",
    "WatchdogHealth",
    "WatchdogPolicy",
    "notify_message",
    "watchdog_interval_s",
]

log = logging.getLogger("wavemq_edge.ops.systemd")

#: Longest loop lag that still counts as healthy. A gateway router's loop does sub-millisecond work per
#: frame; 5 s of lag means something is blocking it (a synchronous disk call, a runaway loop), and with
#: ``WatchdogSec=30`` the kill comes before agents' own 30 s request timeouts pile up.
LOOP_LAG_MAX_S: Final = 5.0
#: A single flush (one LMDB transaction + fdatasync) running longer than this means the storage is
#: wedged. Healthy SD cards commit in well under a second; 60 s leaves room for a slow card under load.
FLUSH_STALL_S: Final = 60.0
#: ``STATUS=`` is free text shown by ``systemctl status``; keep it to one short line.
MAX_STATUS_CHARS: Final = 200
#: systemd reads notification datagrams into a buffer of this size (PIPE_BUF-ish); stay far below.
MAX_MESSAGE_BYTES: Final = 4096


def notify_message(fields: Mapping[str, str | int]) -> bytes:
    """One sd_notify datagram. Values may not contain newlines (each line is one assignment)."""
    lines = []
    for key, value in fields.items():
        if not key or "=" in key or "\n" in key:
            raise ValueError(f"sd_notify key {key!r} must be non-empty without '=' or newline")
        text = str(value)
        if key == "STATUS" and len(text) > MAX_STATUS_CHARS:
            text = text[: MAX_STATUS_CHARS - 3] + "..."
        if "\n" in text:
            raise ValueError(f"sd_notify value of {key} contains a newline")
        lines.append(f"{key}={text}")
    data = "\n".join(lines).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"sd_notify message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """Ping interval from ``$WATCHDOG_USEC`` (half of it), or None when no watchdog is asked for us.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is for (sd_watchdog_enabled(3)); a
    child started from a supervised shell must not ping on its parent's behalf."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    wpid = env.get("WATCHDOG_PID", "")
    if wpid and wpid != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 1e6 / 2


@dataclass(frozen=True, slots=True)
class WatchdogHealth:
    """The outcome of one health check: ``healthy`` and, when not, why (for the log and status)."""

    healthy: bool
    reason: str = ""


class WatchdogPolicy:
    """Decides, at each tick, whether to send ``WATCHDOG=1``. Pure: the caller passes the times."""

    def __init__(self, interval_s: float, lag_max_s: float = LOOP_LAG_MAX_S,
                 flush_stall_s: float = FLUSH_STALL_S) -> None:
        if interval_s <= 0:
            raise ValueError(f"watchdog interval_s={interval_s} must be > 0")
        self.interval_s = interval_s
        # The lag bound never exceeds the interval: a loop late by a whole interval has already let
        # half of the watchdog timeout pass.
        self.lag_max_s = min(lag_max_s, interval_s)
        self.flush_stall_s = flush_stall_s
        self.pings = 0
        self.skipped = 0
        self.last_unhealthy = ""

    def check(self, now: float, scheduled: float, flush_started: float | None) -> WatchdogHealth:
        """``scheduled``: when this tick was meant to run; ``flush_started``: start of the flush in
        flight (None when none is)."""
        lag = now - scheduled
        if lag > self.lag_max_s:
            return self._unhealthy(f"event loop lag {lag:.2f} s > {self.lag_max_s:.2f} s")
        if flush_started is not None and now - flush_started > self.flush_stall_s:
            return self._unhealthy(f"flush running for {now - flush_started:.0f} s > {self.flush_stall_s:.0f} s")
        self.pings += 1
        return WatchdogHealth(True)

    def _unhealthy(self, reason: str) -> WatchdogHealth:
        self.skipped += 1
        self.last_unhealthy = reason
        return WatchdogHealth(False, reason)


def _address(spec: str) -> str | bytes | None:
    if spec.startswith("@"):
        return b"\0" + spec[1:].encode()  # abstract namespace (Linux)
    if spec.startswith("/"):
        return spec
    return None  # vsock and other forms: not for a gateway router


class Notifier:
    """Sends sd_notify datagrams; a no-op when ``$NOTIFY_SOCKET`` is unset (not under systemd).

    Failures are logged once and never raised: losing contact with systemd must not stop the router
    (systemd's watchdog, if any, will act on the missing pings)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        spec = environ.get("NOTIFY_SOCKET", "")
        self.address = _address(spec) if spec else None
        if spec and self.address is None:
            log.warning("event=notify_socket_unsupported socket=%r", spec)
        self._sock: socket.socket | None = None
        self._failed = False
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, fields: Mapping[str, str | int]) -> bool:
        if self.address is None:
            return False
        data = notify_message(fields)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("event=notify_failed socket=%r error=%r", self.address, exc.strerror or str(exc))
            self._failed = True
            return False
        if self._failed:
            log.info("event=notify_recovered")
            self._failed = False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
