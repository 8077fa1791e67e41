"""Logging is configured here and only here.

Under systemd (``$JOURNAL_STREAM`` set) lines carry a ``<N>`` syslog priority prefix and no timestamp,
because journald stamps and ranks them; on a terminal lines are short and human; elsewhere (pipes, files)
they carry a UTC timestamp. Loggers are named ``wavemq_edge.<package>``; messages use lazy ``%``
arguments and ``key=value`` fields.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Final, TextIO

__all__ = ["configure_logging"]

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
