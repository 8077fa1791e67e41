"""A store LMDB reports damaged is set aside at start-up, and the router starts with a fresh one.

Real router processes: a router runs and stops, 4 KiB of its ``queue/data.mdb`` and ``persist/data.mdb``
are flipped, and the restart must come up, log ``event=store_set_aside``, show the stores in status and
count them in the metrics, with the damaged directories renamed and kept byte for byte. A store found
damaged on every start is set aside every time (no restart loop). Damage that makes LMDB *abort* the
process (a zeroed leaf page: an assertion in ``mdb_cursor_next``) is set aside too.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

from router_proc import WAVEMQ, RouterProc, config_text, router_status

from wavemq_edge.storage import QueueKind, QueueStore, StoreOptions
from wavemq_edge.storage.options import TRUNK_LIMITS
from wavemq_edge.storage.store_health import check_isolated, check_store

PAGE = 4096
_P_LEAF = 0x02


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["WAVE_HOME"] = str(tmp / "wave")
    env["HOME"] = str(tmp / "home")
    return env


def _router(tmp: Path) -> RouterProc:
    cfg = tmp / "r.toml"
    text = config_text(tmp, extra='[MetricsConfig]\n  listenAddr = "127.0.0.1:0"\n')
    # full status (what was set aside, and where) is for the local operator: the Unix socket
    cfg.write_text(text.replace("[LocalConfig]\n", f'[LocalConfig]\n  unixSocket = "{tmp / "agent.sock"}"\n'))
    return RouterProc(cfg, _env(tmp))


def _flip_page(path: Path, page: int) -> bytes:
    with open(path, "r+b") as f:
        f.seek(page * PAGE)
        data = bytes(b ^ 0xFF for b in f.read(PAGE))
        f.seek(page * PAGE)
        f.write(data)
    return path.read_bytes()


def _main_root(path: Path) -> int:
    """The page of the main database's root (it names every named database) in the newer meta page:
    ``MDB_meta`` after the 16-byte page header: magic, version, address, mapsize, two ``MDB_db`` of 48
    bytes (``md_root`` last), last page, txn id."""
    data = path.read_bytes()
    metas = [struct.unpack_from("<QQQ", data, page * PAGE + 128) for page in (0, 1)]  # root, last page, txn id
    root, _last, _txn = max(metas, key=lambda m: m[2])
    return int(root)


def _run_once(tmp: Path) -> RouterProc:
    router = _router(tmp).start()
    assert router.terminate() == 0
    router.stop()
    return router


def _metric(address: str, name: str) -> float:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def _set_aside_dirs(tmp: Path, name: str) -> list[Path]:
    return sorted(tmp.glob(f"{name}.corrupt-*"))


def test_flipped_pages_in_both_stores_are_set_aside_and_the_router_starts(tmp_path: Path) -> None:
    _run_once(tmp_path)
    damaged = {}
    for name in ("queue", "persist"):
        data_file = tmp_path / name / "data.mdb"
        damaged[name] = _flip_page(data_file, _main_root(data_file))
        assert check_store(str(tmp_path / name)).state == "corrupt"  # the damage is one LMDB reports
    router = _router(tmp_path).start()
    try:
        out = router.output()
        for name in ("queue", "persist"):
            assert f"event=store_set_aside store={name} path={tmp_path / name} " in out
            (moved,) = _set_aside_dirs(tmp_path, name)
            assert (moved / "data.mdb").read_bytes() == damaged[name]  # kept as it was, not repaired
            assert check_store(str(tmp_path / name)).state == "ok"  # the fresh one
        status = router_status(f"unix:{tmp_path / 'agent.sock'}")
        aside = status["stores_set_aside"]
        assert isinstance(aside, list) and sorted(a["store"] for a in aside) == ["persist", "queue"]
        assert all(Path(a["moved_to"]).is_dir() for a in aside)
        metrics = status["metrics"]
        assert isinstance(metrics, str)
        assert _metric(metrics, "wavemq_edge_stores_set_aside_total") == 2
        assert "stores_set_aside=2" in out
    finally:
        assert router.terminate() == 0
        router.stop()


def test_a_store_damaged_at_every_start_is_set_aside_every_time(tmp_path: Path) -> None:
    _run_once(tmp_path)
    for attempt in range(1, 4):
        data_file = tmp_path / "queue" / "data.mdb"
        _flip_page(data_file, _main_root(data_file))
        router = _run_once(tmp_path)
        assert "event=store_set_aside store=queue" in router.output()
        assert len(_set_aside_dirs(tmp_path, "queue")) == attempt  # each kept, none overwritten


def _leaf_pages(data: bytes) -> list[int]:
    out = []
    for page in range(len(data) // PAGE):
        pgno, _pad, flags = struct.unpack_from("<QHH", data, page * PAGE)
        if pgno == page and flags & _P_LEAF:
            out.append(page)
    return out


def test_damage_that_makes_lmdb_abort_is_set_aside(tmp_path: Path) -> None:
    """A zeroed leaf page makes LMDB fail an assertion (SIGABRT) while reading the queue: the check runs
    in a child, so the router sets the store aside instead of dying at every start."""
    store = tmp_path / "queue"
    s = QueueStore.open(StoreOptions(path=str(store), journal_dir=str(tmp_path / "journal")), 0.0, time.time())
    s.create_queue("backlog", QueueKind.TRUNK, TRUNK_LIMITS, 0.0)
    for i in range(2000):
        s.append("backlog", b"%06d" % i + b"x" * 194, 0.0)
    s.close(0.0)
    data = (store / "data.mdb").read_bytes()
    original = bytes(data)
    for page in reversed(_leaf_pages(data)):
        with open(store / "data.mdb", "r+b") as f:
            f.seek(page * PAGE)
            f.write(b"\0" * PAGE)
        if "SIGABRT" in check_isolated(str(store)).error:
            break
        (store / "data.mdb").write_bytes(original)
    else:
        raise AssertionError("no zeroed leaf page made LMDB abort")
    router = _router(tmp_path).start()
    try:
        assert "event=store_set_aside store=queue" in router.output()
        assert "SIGABRT" in router.output()
        assert len(_set_aside_dirs(tmp_path, "queue")) == 1
    finally:
        assert router.terminate() == 0
        router.stop()


def test_a_sound_database_of_another_kind_is_never_set_aside(tmp_path: Path) -> None:
    """queueDataStore pointing at the persist store (a wrong path, not damage): exit 3 with one line, and
    the store stays where it is, untouched."""
    _run_once(tmp_path)
    store = tmp_path / "persist"
    before = (store / "data.mdb").read_bytes()
    cfg = tmp_path / "wrong.toml"
    cfg.write_text(config_text(tmp_path).replace(f'queueDataStore = "{tmp_path}/queue"', f'queueDataStore = "{store}"')
                   .replace(f'PersistDataStore = "{tmp_path}/persist"', f'PersistDataStore = "{tmp_path}/p2"'))
    proc = subprocess.run([WAVEMQ, "run", str(cfg)], capture_output=True, text=True, timeout=30, env=_env(tmp_path),
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 3 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "QueueConfig.queueDataStore" in proc.stderr and "wavemq-edge-persist/1' store" in proc.stderr
    assert (store / "data.mdb").read_bytes() == before
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_a_store_held_by_a_running_router_is_not_set_aside(tmp_path: Path) -> None:
    first = _router(tmp_path).start()
    try:
        proc = subprocess.run([WAVEMQ, "run", str(tmp_path / "r.toml")], capture_output=True, text=True, timeout=30,
                              env=_env(tmp_path), stdin=subprocess.DEVNULL)
        assert proc.returncode == 3 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "locked by another process" in proc.stderr
        assert not list(tmp_path.glob("*.corrupt-*"))
        assert first.status()["connections"] is not None  # the first router still serves
    finally:
        assert first.terminate() == 0
        first.stop()
