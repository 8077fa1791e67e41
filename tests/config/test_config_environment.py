"""config/environment.py: the daemon's variables picked out of a mapping once, and what is derived from them."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from wavemq_edge.config import Environment, load_default_config, parse_config


def test_from_mapping_reads_every_field_and_nothing_else() -> None:
    env = {
        "WAVEMQ_STATE_DIR": "/s", "STATE_DIRECTORY": "/sd", "XDG_STATE_HOME": "/xs", "HOME": "/h",
        "RUNTIME_DIRECTORY": "/r", "XDG_RUNTIME_DIR": "/xr", "JOURNAL_STREAM": "8:9", "NOTIFY_SOCKET": "@n",
        "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7", "WAVEMQ_EDGE_DEBUG_STALL_S": "2",
        "WAVEMQ_ROUTER": "cli only", "PATH": "/bin",
    }
    e = Environment.from_mapping(env, uid=1000)
    assert e.uid == 1000
    assert all(getattr(e, f.name) for f in fields(Environment))  # every field came from the mapping
    mapped = e.to_mapping()
    assert "WAVEMQ_ROUTER" not in mapped and "PATH" not in mapped
    assert mapped == {k: v for k, v in env.items() if k not in ("WAVEMQ_ROUTER", "PATH")}


def test_empty_counts_as_unset_and_uid_defaults_to_the_process() -> None:
    e = Environment.from_mapping({"RUNTIME_DIRECTORY": "", "NOTIFY_SOCKET": ""})
    assert e == Environment(uid=os.getuid())
    assert e.to_mapping() == {}


def test_state_dir_precedence() -> None:
    def state(env: dict[str, str]) -> Path:
        return Environment.from_mapping(env).state_dir

    assert state({"WAVEMQ_STATE_DIR": "/a", "STATE_DIRECTORY": "/b"}) == Path("/a")
    assert state({"STATE_DIRECTORY": "/b:/c"}) == Path("/b")
    assert state({"XDG_STATE_HOME": "/x"}) == Path("/x/wavemq-edge")
    assert state({"HOME": "/home/u"}) == Path("/home/u/.local/state/wavemq-edge")
    assert state({}) == Path.home() / ".local" / "state" / "wavemq-edge"


def test_journal_dir_precedence() -> None:
    def journal(env: dict[str, str]) -> str:
        return Environment.from_mapping(env, uid=42).journal_dir

    assert journal({"RUNTIME_DIRECTORY": "/run/wavemq-edge:/run/other", "XDG_RUNTIME_DIR": "/x"}) == "/run/wavemq-edge"
    assert journal({"XDG_RUNTIME_DIR": "/run/user/42"}) == "/run/user/42/wavemq-edge"
    assert journal({}) == "/dev/shm/wavemq-edge-42"


def test_the_loader_reads_the_process_environment_once_and_carries_it(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("WAVEMQ_STATE_DIR", str(tmp_path / "st"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/wavemq-edge")
    c = load_default_config()
    assert c.queue.queue_data_store == tmp_path / "st" / "queue"
    assert c.environment.runtime_directory == "/run/wavemq-edge"
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/elsewhere")
    assert c.environment.journal_dir == "/run/wavemq-edge"  # a value, not a view of os.environ


def test_an_injected_environment_is_used_instead_of_the_process_one(tmp_path: Path) -> None:
    given = Environment.from_mapping({"WAVEMQ_STATE_DIR": str(tmp_path)}, uid=5)
    c = parse_config("", "x.toml", environment=given)
    assert c.environment is given
    assert c.routing.router_entity_file == tmp_path / "router.ent"
