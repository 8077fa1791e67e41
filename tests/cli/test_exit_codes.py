"""Exit codes are defined once and keep their values; the commands live in the CLI layer."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from wavemq_edge import __version__
from wavemq_edge.cli.exit_codes import ExitCode
from wavemq_edge.cli.main import main


def test_exit_code_values_are_stable() -> None:
    # Scripts and systemd units compare these numbers: they never change.
    assert {c.name: int(c) for c in ExitCode} == {"OK": 0, "FAILURE": 1, "USAGE": 2, "STARTUP": 3, "TEMPFAIL": 75,
                                                 "INTERRUPTED": 130}
    assert all(c.__doc__ for c in ExitCode)


def test_python_m_wavemq_edge_runs_the_cli() -> None:
    r = subprocess.run([sys.executable, "-m", "wavemq_edge", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == ExitCode.OK and r.stdout.strip() == f"wavemq-edge {__version__}"


def test_wave_has_no_command_line() -> None:
    assert importlib.util.find_spec("wavemq_edge.wave.cli") is None
    assert importlib.util.find_spec("wavemq_edge.cli.wv") is not None


def test_bench_flags_out_of_range_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--messages", "0"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err == "wavemq-edge bench: --messages, --concurrency and --publishers must be >= 1, --payload >= 0\n"
