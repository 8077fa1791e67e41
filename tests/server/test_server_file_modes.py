"""Message payloads and the WAVE database are private to the router's user whatever the umask: a real
`wavemq-edge run` under umask 022 and 000 creates its data directories 0700 and every file in them
0600; an existing data directory that others can enter is used, with one warning line naming it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from router_proc import START_TIMEOUT_S, WAVEMQ, RouterProc, config_text
from waiting import wait_until


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["WAVE_HOME"] = str(tmp / "wave")
    env["HOME"] = str(tmp / "home")
    return env


def _run_once(tmp: Path, umask: int) -> RouterProc:
    cfg = tmp / "r.toml"
    cfg.write_text(config_text(tmp / "state"))
    old = os.umask(umask)  # inherited by the router process
    try:
        router = RouterProc(cfg, _env(tmp)).start()
    finally:
        os.umask(old)
    try:
        assert router.terminate() == 0
    finally:
        router.stop()
    return router


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_data_directories_0700_and_files_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    _run_once(tmp_path, umask)
    state = tmp_path / "state"
    for name in ("queue", "persist", "wave", "journal"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o700, name
    files = [p for name in ("queue", "persist", "wave") for p in (state / name).iterdir()]
    assert {p.name for p in files} >= {"data.mdb", "lock.mdb", "wavemq-edge.lock"}
    for p in [*files, state / "router.ent"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_an_existing_data_directory_open_to_others_is_warned_about(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "queue").mkdir(parents=True)
    (state / "queue").chmod(0o755)
    router = _run_once(tmp_path, 0o022)
    warnings = [line for line in router.output().splitlines() if "event=data_dir_mode" in line]
    assert len(warnings) == 1 and f"path={state / 'queue'} mode=755" in warnings[0]


def test_run_without_a_config_creates_the_wave_database_0700(tmp_path: Path) -> None:
    """`wavemq-edge run` on the embedded default shares `wv`'s database ($WAVE_HOME): it creates it as
    `wv` does, 0700 (it used to be 0755)."""
    env = _env(tmp_path)
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")  # the journal, away from /dev/shm
    (tmp_path / "run").mkdir(mode=0o700)
    log_path = tmp_path / "router.log"
    old = os.umask(0o022)
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([WAVEMQ, "run", "--state-dir", str(tmp_path / "state"), "--listen", "127.0.0.1:0"],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    finally:
        os.umask(old)
    try:
        wait_until(lambda: "(agents)" in log_path.read_text() or proc.poll() is not None, START_TIMEOUT_S,
                   "the router's listening line")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert stat.S_IMODE((tmp_path / "wave").stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "wave").iterdir()} == {0o600}
    assert stat.S_IMODE((tmp_path / "run" / "wavemq-edge").stat().st_mode) == 0o700
