"""A full disk: what the router answered OK it keeps; what it cannot keep it refuses up front.

The state directories live on a small tmpfs (8 MB, mounted by the test: root only, skipped otherwise).
A durable subscription waits while 8 000 persisted 2 KB messages are published to it: with the default
``onDiskFull = "refuse"`` the router answers some of them ``STORAGE_FULL`` (633) and the publisher's
client raises ``StorageFull``; after the space is freed (the tmpfs grown) and the router restarted,
the subscription delivers every message that was answered OK, and none that was refused. Nothing was
dropped for want of room (no ``budget`` or ``storage-full`` drops)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proc_helpers import WAVEMQ, RouterProcess, Site, run
from router_proc import with_operator_socket
from waiting import wait_until

from wavemq_edge.client import Client, StorageFull
from wavemq_edge.router.disk_guard import SAMPLE_S

MESSAGES = 8000
PAYLOAD = 2048
SMALL_FS = "8m"
FREED_FS = "256m"


def _mount(where: Path, size: str, remount: bool = False) -> subprocess.CompletedProcess[bytes]:
    opts = f"remount,size={size}" if remount else f"size={size},mode=0755"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "state"
    where.mkdir()
    r = _mount(where, SMALL_FS)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


def _config(site: Site, state: Path, queue: str = "flushSize = 1") -> Path:
    text = site.config.read_text()
    text = text.replace(f'queueDataStore = "{site.dir}/queue"', f'queueDataStore = "{state}/queue"')
    text = text.replace(f'PersistDataStore = "{site.dir}/persist"', f'PersistDataStore = "{state}/persist"')
    text = text.replace("flushInterval = 1\n", "")
    text = text.replace("[QueueConfig]", f"[QueueConfig]\n  {queue}")
    text = with_operator_socket(text, site.dir / "agent.sock")
    text += "\n[BudgetConfig]\n  diskReserve = 1\n  sampleInterval = 0.2\n[MetricsConfig]\n  enabled = false\n"
    cfg = site.dir / "small.toml"
    cfg.write_text(text)
    return cfg


async def _publish_all(address: str, entity: Path, ns: Path, db: str, count: int = MESSAGES
                       ) -> tuple[set[str], list[StorageFull]]:
    """Subscribe durably (then leave), publish every message; the URIs answered OK, and the refusals."""
    accepted: set[str] = set()
    refusals: list[StorageFull] = []
    async with await Client.connect(address, entity=entity, wave_db=db, reconnect=False) as client:
        async with client.subscribe(ns, "t/*", identifier="keeper"):
            pass
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            uri = f"t/{i}"
            async with sem:
                try:
                    await client.publish(ns, uri, bytes([i % 251]) * PAYLOAD, persist=True)
                except StorageFull as exc:
                    refusals.append(exc)
                else:
                    accepted.add(uri)

        await asyncio.gather(*(one(i) for i in range(count)))
    return accepted, refusals


async def _receive_all(address: str, entity: Path, ns: Path, db: str, expect: int) -> set[str]:
    got: set[str] = set()
    async with await Client.connect(address, entity=entity, wave_db=db, reconnect=False) as client, \
            client.subscribe(ns, "t/*", identifier="keeper") as sub:
        async def drain() -> None:
            async for msg in sub:
                got.add(msg.uri)
                if len(got) >= expect:
                    return

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(drain(), 120)
    return got


@pytest.mark.timeout(600)
def test_full_disk_refuses_publishes_and_keeps_every_accepted_one(site: Site, small_fs: Path) -> None:
    service = site.entity("service")
    ns = site.dir / "namespace.ent"
    cfg = _config(site, small_fs)
    r1 = RouterProcess(cfg, site.env).start()
    try:
        accepted, refusals = asyncio.run(_publish_all(r1.address, service, ns, site.env["WAVE_HOME"]))
        assert refusals, f"an {SMALL_FS} filesystem took all {MESSAGES} messages: the test proves nothing"
        assert accepted, "nothing was accepted"
        assert all(e.code == 633 for e in refusals)
        assert "disk" in refusals[0].reason, refusals[0].reason
        status = r1.status()
        store = status.get("disk_full")
        # (its state may be "ok" again by now: a flush turns the estimate of what was pending into what
        # it really took, usually a little less; tests/router/test_router_disk_guard.py pins the states)
        assert isinstance(store, dict) and store["policy"] == "refuse" and store["refused"] >= len(refusals)
        human = run([WAVEMQ, "status", "--router", f"unix:{site.dir / 'agent.sock'}"], site.env, cwd=site.dir)
        assert "disk full" in human.stdout and "(onDiskFull = refuse)" in human.stdout, human.stdout
        # the CLI: one line and exit 75 for the refusal (the first few may still fit, see above)
        for i in range(20):
            pub = run([WAVEMQ, "pub", "--router", r1.address, "--entity", str(service), "--namespace", str(ns),
                       "--persist", f"t/cli{i}", "x" * PAYLOAD], site.env, cwd=site.dir)
            if pub.returncode == 0:
                accepted.add(f"t/cli{i}")
                continue
            assert pub.returncode == 75, (pub.returncode, pub.stderr)
            assert pub.stderr.count("\n") == 1 and "STORAGE_FULL" in pub.stderr, pub.stderr
            break
        else:
            raise AssertionError("20 more 2 KB messages fit on a disk that refused thousands")
        r1.terminate(timeout=60)
    finally:
        r1.stop()
    # free space: the same filesystem, grown
    grown = _mount(small_fs, FREED_FS, remount=True)
    assert grown.returncode == 0, grown.stderr
    r2 = RouterProcess(cfg, site.env).start()
    try:
        got = asyncio.run(_receive_all(r2.address, service, ns, site.env["WAVE_HOME"], len(accepted)))
        assert got == accepted, (f"{len(accepted - got)} accepted message(s) lost, "
                                 f"{len(got - accepted)} refused one(s) delivered")
        drops = r2.status()["drops"]
        assert isinstance(drops, dict)
        assert drops.get("budget", 0) == 0 and drops.get("storage-full", 0) == 0, drops
    finally:
        r2.stop()


def _fill(fs: Path) -> Path:
    """Fill ``fs`` to the last byte with a file of someone else's (what a runaway log does)."""
    filler = fs / "filler"
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as f:
        for size in (len(chunk), 512):
            with contextlib.suppress(OSError):
                while True:
                    f.write(chunk[:size])
    return filler


@pytest.mark.timeout(300)
def test_disk_filled_underneath_keeps_accepted_messages_and_refuses_new_ones(site: Site, small_fs: Path) -> None:
    """Accepted, not yet flushed, and then another file fills the disk: the budget watch sheds nothing
    (``onDiskFull = "refuse"``), new publishes are refused, the final flush fails and the crash journal
    keeps the messages; once the space is freed a restart delivers every one."""
    service = site.entity("service")
    ns = site.dir / "namespace.ent"
    cfg = _config(site, small_fs, queue="flushSize = 64\n  flushInterval = 3600")
    r1 = RouterProcess(cfg, site.env).start()
    try:
        accepted, refusals = asyncio.run(_publish_all(r1.address, service, ns, site.env["WAVE_HOME"], count=300))
        assert len(accepted) == 300 and not refusals
        filler = _fill(small_fs)

        filled = time.monotonic()

        def refusing() -> bool:
            # The budget watch has seen it, and the core's disk check has no sample left from before the
            # fill (it reuses one for up to SAMPLE_S: a publish right after the fill may still pass).
            budget = r1.status()["budget"]
            stale = time.monotonic() - filled > SAMPLE_S
            return isinstance(budget, dict) and budget["refusing_durable"] is True and stale

        wait_until(refusing, 20, "the budget watch and the disk check to see the full disk")
        pub = run([WAVEMQ, "pub", "--router", r1.address, "--entity", str(service), "--namespace", str(ns),
                   "--persist", "t/late", "late"], site.env, cwd=site.dir)
        assert pub.returncode == 75 and "STORAGE_FULL" in pub.stderr, (pub.returncode, pub.stderr)
        status = r1.status()
        assert status["disk_full"]["state"] == "refusing"  # type: ignore[index]
        assert status["drops"] == {k: 0 for k in status["drops"]}, status["drops"]  # type: ignore[union-attr]
        r1.terminate(timeout=60)
        log = r1.output()
        assert "event=budget_shed" not in log
        assert "event=final_flush outcome=storage-full" in log or "final_flush outcome=failed" in log, log[-3000:]
    finally:
        r1.stop()
    filler.unlink()
    r2 = RouterProcess(cfg, site.env).start()
    try:
        got = asyncio.run(_receive_all(r2.address, service, ns, site.env["WAVE_HOME"], len(accepted)))
        assert got == accepted, f"{len(accepted - got)} accepted message(s) lost"
    finally:
        r2.stop()


@pytest.mark.timeout(120)
def test_pub_says_storage_full_in_one_line_and_exits_75(site: Site) -> None:
    """No root needed: a reserve larger than any disk. A persisted publish needs room and is refused
    (``STORAGE_FULL``, exit 75, one line); one that no queue wants and is not persisted needs none."""
    service = site.entity("service")
    cfg = site.dir / "huge-reserve.toml"
    text = with_operator_socket(site.config.read_text(), site.dir / "agent.sock")
    cfg.write_text(text + "\n[BudgetConfig]\n  diskReserve = 16777216\n[MetricsConfig]\n  enabled = false\n")
    r = RouterProcess(cfg, site.env).start()
    try:
        args = [WAVEMQ, "pub", "--router", r.address, "--entity", str(service), "--namespace",
                str(site.dir / "namespace.ent")]
        refused = run([*args, "--persist", "t/kept", "hello"], site.env, cwd=site.dir)
        assert refused.returncode == 75, (refused.returncode, refused.stderr)
        lines = refused.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("wavemq-edge pub: not accepted (633 STORAGE_FULL): the "
                                                       "router's disk is full"), refused.stderr
        assert "diskReserve" in lines[0] and lines[0].endswith("publish it again later")
        fine = run([*args, "t/nobody", "hello"], site.env, cwd=site.dir)
        assert fine.returncode == 0, fine.stderr
        status = r.status()
        assert status["refused"] == {"STORAGE_FULL": 1}, status["refused"]
        assert status["disk_full"]["state"] == "refusing", status["disk_full"]  # type: ignore[index]
    finally:
        r.stop()
