"""The report's min / median / max table and the CI gate's verdict."""

from __future__ import annotations

import pytest

from wavemq_edge.bench.gate import judge
from wavemq_edge.bench.report import Figure, render, render_json

pytestmark = pytest.mark.timeout(30)

_FIGS = (Figure("a", "figure a", "{:.1f}"), Figure("b", "figure b", "{:.0f}"), Figure("c", "never measured", "{}"))


def test_table_has_min_median_max_of_each_measured_figure() -> None:
    text = render("title", [{"a": 3.0, "b": 10.0}, {"a": 1.0}, {"a": 2.0, "b": 30.0}], _FIGS, ["a note"])
    lines = text.splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == ["min", "median", "max"]
    assert lines[2].split() == ["figure", "a", "1.0", "2.0", "3.0"]
    assert lines[3].split() == ["figure", "b", "10", "20", "30"]
    assert "never measured" not in text
    assert lines[-1] == "a note"


def test_one_run_prints_one_value() -> None:
    assert render("t", [{"a": 2.5}], _FIGS).splitlines()[2].split() == ["figure", "a", "2.5"]


def test_json_has_runs_and_summary() -> None:
    import json

    out = json.loads(render_json([{"a": 1.0}, {"a": 3.0}], _FIGS, {"machine": "m"}))
    assert out["summary"]["a"] == {"min": 1.0, "median": 2.0, "max": 3.0, "n": 2}
    assert out["machine"] == "m" and len(out["runs"]) == 2


@pytest.mark.parametrize(("measured", "ok"), [(0.40, True), (0.21, True), (0.20, True), (0.199, False), (0.0, False)])
def test_gate_fails_only_below_half_the_recorded_ratio(measured: float, ok: bool) -> None:
    passed, line = judge(measured, 0.40)
    assert passed is ok
    assert "recorded 0.400" in line and "fails below 0.200" in line


def test_headline_is_the_median_run_cpu_capacity_and_ratio() -> None:
    from wavemq_edge.bench.compare import headline

    runs = [{"sat_cpu_us": us, "sat_capacity": 1e6 / us, "sat_ratio": 40.0 / us, "verify_us": 40.0}
            for us in (80.0, 100.0, 90.0)]
    line = headline(runs)
    assert line.startswith("headline (median of 3): router CPU 90.0 µs per secured message")
    assert "capacity 11,111 msg/s = 0.44 x the verify rate (verify 40.0 µs)" in line
    assert "Mosquitto" not in line
    assert "Mosquitto 11.0 µs" in headline([{**runs[0], "mqtt_cpu_us": 11.0}])
