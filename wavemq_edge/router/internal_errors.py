"""Unexpected exceptions while handling one request: logged once per place they come from, then counted.

A bug or a store that fails underneath (an LMDB read that raises on a damaged page) must cost the one
request that hit it, not the connection and not the log: the session answers ``REFUSED 699 INTERNAL``
and keeps the connection open (``session.py``), and this module decides what reaches the log. The
*site* of an exception is its type and the innermost frame it was raised in (file and line). The first
time a site is seen its traceback is logged; after that one line per ``REPEAT_WINDOW_S`` says how many
more there were (``repeated=N``), so a store that fails on every query cannot flood the journal.
Sans-I/O: ``now`` is passed in.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Final

from ..lru import LRU

__all__ = ["InternalErrorLog", "exception_site"]

#: Sites remembered (a bug has one or a few; bounded so a pathological stream cannot grow it).
MAX_SITES: Final = 256
#: After the first traceback of a site, one summary line at most this often (seconds).
REPEAT_WINDOW_S: Final = 60.0


def exception_site(exc: BaseException) -> str:
    """``Type@file:line`` of the innermost frame ``exc`` passed through."""
    tb = exc.__traceback__
    if tb is None:
        return type(exc).__name__
    last = traceback.extract_tb(tb)[-1]
    return f"{type(exc).__name__}@{os.path.basename(last.filename)}:{last.lineno}"


class InternalErrorLog:
    def __init__(self, logger: logging.Logger, window_s: float = REPEAT_WINDOW_S) -> None:
        self.logger = logger
        self.window_s = window_s
        #: site -> (time of the last line logged, occurrences not logged since)
        self._sites: LRU[str, tuple[float, int]] = LRU(MAX_SITES)
        #: every unexpected exception reported, logged or not
        self.total = 0

    def report(self, exc: BaseException, what: str, peer: str, now: float) -> bool:
        """Account for ``exc`` raised while handling ``what`` for ``peer``; True when a line was logged."""
        self.total += 1
        site = exception_site(exc)
        entry = self._sites.peek(site)
        if entry is None:
            self._sites.put(site, (now, 0))
            self.logger.error("event=request_internal_error site=%s request=%s peer=%s error=%r", site, what, peer,
                              str(exc), exc_info=exc)
            return True
        last, suppressed = entry
        if now - last < self.window_s:
            self._sites.put(site, (last, suppressed + 1))
            return False
        self._sites.put(site, (now, 0))
        self.logger.error("event=request_internal_error site=%s request=%s peer=%s error=%r repeated=%d", site, what,
                          peer, str(exc), suppressed + 1)
        return True
