"""The `wavemq-edge` entry point, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wavemq_edge import __version__

DATA = Path(__file__).parent.parent / "data"
EXE = Path(sys.executable).parent / "wavemq-edge"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not EXE.exists():
        pytest.fail(f"{EXE} is missing: install the package into this interpreter (ci/test does)")
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"wavemq-edge {__version__}"


def test_check_config_prints_effective_config() -> None:
    r = run("check-config", str(DATA / "seed-dr.toml"))
    assert r.returncode == 0, r.stderr
    assert "trunkingQueueMaxSize = 3000" in r.stdout
    assert "maxFrameBytes = 262144" in r.stdout  # defaults filled in


def test_check_config_site_with_xbos_lines(tmp_path: Path) -> None:
    lines = (DATA / "seed-site.toml").read_text().rstrip("\n").splitlines()
    f = tmp_path / "wavemq.toml"
    f.write_text("\n".join(lines[:-3]) + "\n" + (DATA / "seed-xbos-lines.toml").read_text())
    r = run("check-config", str(f))
    assert r.returncode == 0, r.stderr
    assert 'Namespace = "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w=="' in r.stdout


def test_check_config_refuses_placeholders_without_traceback() -> None:
    r = run("check-config", str(DATA / "seed-site.toml"))
    assert r.returncode == 2
    assert "RoutingConfig.Router[0].Namespace" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_check_config_embedded_default(tmp_path: Path) -> None:
    r = run("check-config", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert f'queueDataStore = "{tmp_path}/queue"' in r.stdout


def test_bad_usage_exits_2() -> None:
    r = run("no-such-command")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run()
    assert r.returncode == 2 and "check-config" in r.stderr
    r = run("check-config", "/nonexistent/wavemq.toml")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[QueueConfig]\nflushInterval = 0\n")
    r = run("run", str(f))
    assert r.returncode == 2
    assert "QueueConfig.flushInterval = 0: must be >= 1 second" in r.stderr
