"""Logging: journald format when $JOURNAL_STREAM names our stream, human on a TTY, timestamps
elsewhere; rate-limited repeated warnings with their counts."""

from __future__ import annotations

import io
import logging
import os
import pty
from pathlib import Path

import pytest

from wavemq_edge.ops.logging import RateLimitedLog, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger("wavemq_edge")
    saved = (list(root.handlers), root.level, root.propagate)
    yield None
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    root.propagate = saved[2]


def test_journal_stream_gets_priority_prefixes_and_no_timestamps(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "journal", "w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        configure_logging("DEBUG", stream)
        log = logging.getLogger("wavemq_edge.test")
        log.error("event=a x=%d", 1)
        log.warning("event=b")
        log.info("event=c\nsecond line")
        log.debug("event=d")
        stream.flush()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines == ["<3>wavemq_edge.test: event=a x=1", "<4>wavemq_edge.test: event=b",
                     "<6>wavemq_edge.test: event=c", "<6>second line", "<7>wavemq_edge.test: event=d"]


def test_a_journal_stream_of_another_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # $JOURNAL_STREAM is inherited by children whose stderr may be redirected elsewhere: only the very
    # stream systemd connected counts
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    out = io.StringIO()
    configure_logging("INFO", out)
    logging.getLogger("wavemq_edge.test").warning("event=x")
    line = out.getvalue().strip()
    assert not line.startswith("<") and "WARNING wavemq_edge.test: event=x" in line and line[:4].isdigit()


def test_tty_is_short_and_human(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            configure_logging("INFO", tty)
            logging.getLogger("wavemq_edge.test").warning("event=y")
            tty.flush()
        data = os.read(master, 1000).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert data.strip() == "WARNING event=y"


def test_rate_limited_warning_once_per_window_with_count() -> None:
    out = io.StringIO()
    logger = logging.getLogger("wavemq_edge.test.rate")
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        rl = RateLimitedLog(logger, window_s=60.0, max_keys=2)
        assert rl.warning("disk", 0.0, "event=disk_full dir=%s", "/q")
        for t in range(1, 30):
            assert not rl.warning("disk", float(t), "event=disk_full dir=%s", "/q")
        assert rl.suppressed("disk") == 29
        assert rl.warning("other", 5.0, "event=other")  # keys are independent
        assert rl.warning("disk", 61.0, "event=disk_full dir=%s", "/q")
        assert out.getvalue().splitlines() == ["event=disk_full dir=/q", "event=other",
                                               "event=disk_full dir=/q repeated=29"]
        # bounded: a third key evicts the least recently used one, which then logs again
        rl.warning("third", 62.0, "event=third")
        assert rl.warning("other", 63.0, "event=other")
    finally:
        logger.removeHandler(handler)
