"""The router config every process-level test starts from: everything in one temporary directory,
listeners on 127.0.0.1 with ephemeral ports. (tests/ is on sys.path through tests/conftest.py.)"""

from __future__ import annotations

from pathlib import Path


def config_text(tmp: Path, *, flush_interval: int = 1, extra: str = "") -> str:
    return f"""
[WaveConfig]
  database = "{tmp}/wave"
[QueueConfig]
  queueDataStore = "{tmp}/queue"
  flushInterval = {flush_interval}
  journalDir = "{tmp}/journal"
[LocalConfig]
  listenAddr = "127.0.0.1:0"
[PeerConfig]
  listenAddr = "127.0.0.1:0"
[RoutingConfig]
  PersistDataStore = "{tmp}/persist"
  RouterEntityFile = "{tmp}/router.ent"
{extra}
"""
