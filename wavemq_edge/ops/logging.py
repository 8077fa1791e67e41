"""Logging is configured here and only here.

Under systemd (``$JOURNAL_STREAM`` set) lines carry a ``<N>`` syslog priority prefix and no timestamp,
because journald stamps and ranks them; on a terminal lines are short and human; elsewhere (pipes, files)
they carry a UTC timestamp. Loggers are named ``wavemq_edge.<package>``; messages use lazy ``%``
arguments and ``key=value`` fields.

A warning that can repeat at the rate of the traffic (a full disk, a refused flood) goes through
``RateLimitedLog``: the first one of a burst is logged, the rest of the burst is counted, and the next
line says how many were suppressed (nats-server's ``RateLimitWarnf``, plus the count).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Final, TextIO

from ..lru import LRU

__all__ = ["RATE_LIMIT_WINDOW_S", "RateLimitedLog", "configure_logging"]

#: A repeated message is logged at most once per this many seconds per key: long enough that a flood
#: costs one line a minute (journald on an SD card), short enough that an operator tailing sees it.
RATE_LIMIT_WINDOW_S: Final = 60.0
#: Distinct keys remembered; past it the least recently used is forgotten (and may log once more).
RATE_LIMIT_MAX_KEYS: Final = 256

_PRIORITY: Final = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # journald takes one line per record: keep continuation lines under the same priority.
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines() or [""])


def _on_journal(stream: TextIO) -> bool:
    spec = os.environ.get("JOURNAL_STREAM", "")
    if not spec or ":" not in spec:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    dev, _, ino = spec.partition(":")
    return f"{st.st_dev}:{st.st_ino}" == f"{dev}:{ino}"


def configure_logging(level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Set up the ``wavemq_edge`` logger tree once; calling again replaces the handler."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    if _on_journal(out):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    elif out.isatty():
        handler.setFormatter(logging.Formatter("%(levelname)-7s %(message)s"))
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger("wavemq_edge")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    root.propagate = False


class RateLimitedLog:
    """Log a repeated message once per ``window_s`` per key, with the count of the ones suppressed.

    ``now`` is passed in (the caller's ``loop.time()``), so tests drive it without sleeping. The line
    after a suppressed stretch carries ``repeated=N``: how many identical events were not logged."""

    def __init__(self, logger: logging.Logger, window_s: float = RATE_LIMIT_WINDOW_S,
                 max_keys: int = RATE_LIMIT_MAX_KEYS) -> None:
        self.logger = logger
        self.window_s = window_s
        self.max_keys = max_keys
        # key -> (time of the last line logged, events suppressed since)
        self._keys: LRU[str, tuple[float, int]] = LRU(max_keys)

    def log(self, level: int, key: str, now: float, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``window_s`` ago; True if logged."""
        entry = self._keys.peek(key)
        if entry is not None and now - entry[0] < self.window_s:
            self._keys.put(key, (entry[0], entry[1] + 1))
            return False
        suppressed = entry[1] if entry is not None else 0
        if suppressed:
            self.logger.log(level, msg + " repeated=%d", *args, suppressed)
        else:
            self.logger.log(level, msg, *args)
        self._keys.put(key, (now, 0))
        return True

    def warning(self, key: str, now: float, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, now, msg, *args)

    def suppressed(self, key: str) -> int:
        entry = self._keys.peek(key)
        return entry[1] if entry is not None else 0
