"""Every start-up failure of `wavemq-edge run` is one line on stderr naming the path and the cause, and
exit status 3 (STARTUP): no traceback, no "Task was destroyed but it is pending!", no shutdown lines.
Real router processes; the read-only filesystem and the foreign journal directory need root (a tmpfs
remounted read-only, a chown) and are skipped with one line otherwise."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from router_proc import WAVEMQ, RouterProc, config_text

from wavemq_edge.cli.exit_codes import ExitCode
from wavemq_edge.wave import create_entity, save_entity_secret

RUN_TIMEOUT_S = 30.0


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["WAVE_HOME"] = str(tmp / "wave")
    env["HOME"] = str(tmp / "home")
    return env


def _run(tmp: Path, extra: str = "", *, make_entity: bool = True, journal: str | None = None) -> tuple[int, str]:
    """Run the router on a config in ``tmp`` that must fail to start; returns (status, stderr)."""
    text = config_text(tmp, extra=extra)
    if journal is not None:
        text = text.replace(f'journalDir = "{tmp}/journal"', f'journalDir = "{journal}"')
    (tmp / "r.toml").write_text(text)
    if make_entity and not (tmp / "router.ent").exists():
        save_entity_secret(tmp / "router.ent", create_entity(time.time() - 60, 86400))
    proc = subprocess.run([WAVEMQ, "run", str(tmp / "r.toml")], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, env=_env(tmp), stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stderr


def _assert_one_line(status: int, stderr: str, *needles: str) -> None:
    lines = stderr.splitlines()
    assert status == ExitCode.STARTUP == 3, stderr
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("wavemq-edge: cannot start: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_router_entity_file_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "router.ent").mkdir()
    _assert_one_line(*_run(tmp_path, make_entity=False), "RoutingConfig.RouterEntityFile", str(tmp_path / "router.ent"),
                     "Is a directory")


def test_router_entity_file_is_garbage(tmp_path: Path) -> None:
    (tmp_path / "router.ent").write_text("garbage\n")
    _assert_one_line(*_run(tmp_path, make_entity=False), "RoutingConfig.RouterEntityFile",
                     str(tmp_path / "router.ent"))


def test_designated_namespace_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    _assert_one_line(*_run(tmp_path, f'  DesignatedNamespaceFiles = ["{missing}"]'),
                     "RoutingConfig.DesignatedNamespaceFiles", str(missing), "No such file")


def test_designated_namespace_file_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "proof.pem"
    garbage.write_text("not a proof\n")
    _assert_one_line(*_run(tmp_path, f'  DesignatedNamespaceFiles = ["{garbage}"]'),
                     "RoutingConfig.DesignatedNamespaceFiles", str(garbage))


def test_journal_dir_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "journal-link"
    link.symlink_to(target)
    _assert_one_line(*_run(tmp_path, journal=str(link)), "QueueConfig.journalDir", str(link), "symbolic link")


def test_journal_dir_writable_by_others_is_refused(tmp_path: Path) -> None:
    jd = tmp_path / "shared-journal"
    jd.mkdir()
    jd.chmod(0o777)
    _assert_one_line(*_run(tmp_path, journal=str(jd)), "QueueConfig.journalDir", str(jd), "mode 777")
    assert not (tmp_path / "queue").exists() or not any((tmp_path / "queue").iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a directory owned by another user")
def test_journal_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    """Another local user created /dev/shm/wavemq-edge-<uid> first (here: a directory chowned to nobody)."""
    jd = tmp_path / "foreign-journal"
    jd.mkdir(mode=0o700)
    os.chown(jd, 65534, 65534)
    _assert_one_line(*_run(tmp_path, journal=str(jd)), "QueueConfig.journalDir", str(jd), "owned by uid 65534")


@contextlib.contextmanager
def _tmpfs(path: Path) -> Iterator[None]:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("read-only filesystem test: needs root and mount")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], capture_output=True,
                          text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"read-only filesystem test: cannot mount a tmpfs: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def test_existing_state_on_a_read_only_filesystem(tmp_path: Path) -> None:
    """State made by a router that ran and stopped, then the filesystem remounted read-only."""
    state = tmp_path / "state"
    with _tmpfs(state):
        (tmp_path / "cfg").mkdir()
        cfg = tmp_path / "cfg" / "r.toml"
        cfg.write_text(config_text(state).replace(f'"{state}/wave"', f'"{tmp_path}/wave"')
                       .replace(f'"{state}/journal"', f'"{tmp_path}/journal"'))
        router = RouterProc(cfg, _env(tmp_path)).start()
        try:
            assert router.terminate() == 0
        finally:
            router.stop()
        ro = subprocess.run(["mount", "-o", "remount,ro", str(state)], capture_output=True, text=True, timeout=30)
        if ro.returncode != 0:
            pytest.skip(f"read-only filesystem test: cannot remount read-only: {ro.stderr.strip()}")
        proc = subprocess.run([WAVEMQ, "run", str(cfg)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              env=_env(tmp_path), stdin=subprocess.DEVNULL)
        _assert_one_line(proc.returncode, proc.stderr, "QueueConfig.queueDataStore", str(state / "queue"),
                         "Read-only file system")
