"""hw/: every board profile loads, its MemoryMax is twice its memoryBudget, and its worst case fits the
board's memory and a typical SD card by the router's own start-up check; the unit file keeps the
properties the issue asks for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wavemq_edge.config import load_config, load_default_config
from wavemq_edge.ops.budget import MIB, FitInputs, check_fit, replay_window_entries
from wavemq_edge.storage.options import DEFAULT_MAX_MAP_SIZE, StoreOptions

HW = Path(__file__).resolve().parents[2] / "hw"
GB = 1024 * MIB

#: (free space on a typical card after Raspberry Pi OS Lite, memory available to the router)
BOARDS = {
    "pi-zero-2w": (10 * GB, 300 * MIB),  # 16 GB card, 512 MB RAM
    "pi3": (20 * GB, 650 * MIB),  # 32 GB card, 1 GB RAM
    "pi4": (20 * GB, 1500 * MIB),  # 32 GB card, 2 GB RAM
    "pi5": (50 * GB, 3200 * MIB),  # 64 GB card, 4 GB RAM
}


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+)M", text)
    assert m, text
    return int(m.group(1)) * MIB


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_profile_loads_and_fits_its_board(board: str, tmp_path: Path) -> None:
    path = HW / "profiles" / f"{board}.toml"
    cfg = load_config(path, state_dir=tmp_path)
    text = path.read_text()
    mem_max = _size(re.search(r"MemoryMax=(\S+)", text).group(1))  # type: ignore[union-attr]
    mem_high = _size(re.search(r"MemoryHigh=(\S+)", text).group(1))  # type: ignore[union-attr]
    budget = cfg.budget.memory_budget_mb * MIB
    assert mem_max == 2 * budget and budget < mem_high < mem_max
    assert str(cfg.queue.queue_data_store).startswith("/var/lib/wavemq-edge/")
    assert cfg.queue.journal_dir is None  # $RUNTIME_DIRECTORY under systemd
    assert str(cfg.metrics.listen_addr).startswith("127.0.0.1:")
    free, available = BOARDS[board]
    q = cfg.queue
    report = check_fit(FitInputs(
        memory_budget=budget, disk_reserve=cfg.budget.disk_reserve_mb * MIB, queue_dir=str(q.queue_data_store),
        subscription_max_bytes=q.subscription_queue_max_size_mb * MIB,
        subscription_max_length=q.subscription_queue_max_length,
        trunk_max_bytes=q.trunking_queue_max_size_mb * MIB, trunk_max_length=q.trunking_queue_max_length,
        trunk_queues=1, max_map_bytes=DEFAULT_MAX_MAP_SIZE, flush_bytes=q.flush_size_mb * MIB,
        journal_max_bytes=StoreOptions(path="").journal_max_bytes,
        disk_free={str(q.queue_data_store): free}, available_memory=available, cgroup_memory_max=mem_max,
        inflight_window=cfg.limits.inflight_window, max_frame_bytes=cfg.limits.max_frame_bytes,
        replay_window=replay_window_entries(budget)))
    assert report.fits, report.problems


def test_unit_file_matches_the_issue_and_the_default_budget(tmp_path: Path) -> None:
    unit = (HW / "systemd" / "wavemq-edge.service").read_text()
    keys = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k, v)
    assert keys["Type"] == "notify" and keys["WatchdogSec"] == "30" and keys["Restart"] == "always"
    assert keys["StateDirectory"] == keys["RuntimeDirectory"] == "wavemq-edge"
    assert keys["RuntimeDirectoryPreserve"] == "yes"  # a crash-restart must find the tmpfs journal
    assert keys["User"] == "wavemq-edge" and keys["ProtectSystem"] == "strict" and keys["NoNewPrivileges"] == "yes"
    assert "ProcSubset" not in keys  # psutil needs /proc/meminfo and /proc/stat
    default_budget = load_default_config(tmp_path).budget.memory_budget_mb * MIB
    assert _size(keys["MemoryMax"]) == 2 * default_budget
    pi3 = (HW / "profiles" / "pi3.toml").read_text()
    assert f"MemoryMax={keys['MemoryMax']}" in pi3  # the unit as shipped suits the Pi 3 profile
