"""The compiled build (setup.py + mypyc): the module lists agree, a compiled install really is compiled,
and a machine without a C compiler still gets a working pure-Python package."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from wavemq_edge.build_info import HOT_MODULES, compiled_modules

ROOT = Path(__file__).resolve().parents[1]


def _setup_hot_modules() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "HOT_MODULES" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return [p.removesuffix(".py").replace("/", ".") for p in value]
    raise AssertionError("setup.py has no HOT_MODULES list")


def test_setup_and_build_info_list_the_same_modules() -> None:
    assert _setup_hot_modules() == list(HOT_MODULES)
    for name in HOT_MODULES:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name


@pytest.mark.skipif(os.environ.get("WAVEMQ_EDGE_EXPECT_COMPILED") != "1",
                    reason="pure-Python run (ci/compiled-test sets WAVEMQ_EDGE_EXPECT_COMPILED=1)")
def test_compiled_install_runs_every_hot_module_compiled() -> None:
    assert compiled_modules() == list(HOT_MODULES)


def test_build_without_a_compiler_falls_back_to_pure_python(tmp_path: Path) -> None:
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        pytest.skip("setuptools and wheel are needed for a build without isolation")
    env = {**os.environ, "CC": "false", "WAVEMQ_EDGE_COMPILE": "auto"}
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheels = list(tmp_path.glob("wavemq_edge-*.whl"))
    assert len(wheels) == 1
    assert wheels[0].name.endswith("-py3-none-any.whl"), wheels[0].name
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
    assert not [n for n in names if n.endswith(".so")]
    assert "wavemq_edge/uri.py" in names
    assert "no working C compiler" in out.stderr
