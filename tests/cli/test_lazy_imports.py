"""What each ``wavemq-edge`` path imports (issue 12, start time and idle memory): ``--help`` loads no event
loop, crypto, store or router; ``run`` none of the client, demo or ``wv`` code; a one-shot ``pub`` with a
proof file no LMDB, psutil, uvloop, passphrase KDF, configuration or router.

Each check runs the real command line in a child process and reads that child's ``sys.modules`` (what
was imported, not how long it took: start times are measured by ``wavemq-edge bench``, not asserted).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from router_proc import WV, RouterProc, config_text

TIMEOUT_S = 60.0

#: Run ``main(argv)`` in this child and write its ``sys.modules`` to $MODULES_OUT: at exit, or (``run``)
#: once the banner is printed, after which the child stops itself with SIGTERM, as an operator would.
CHILD = """
import json, os, signal, sys

def dump():
    with open(os.environ["MODULES_OUT"], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))

class BannerWatch:
    def __init__(self, out):
        self.out = out
    def write(self, text):
        n = self.out.write(text)
        if "Stop with" in text:
            dump()
            os.kill(os.getpid(), signal.SIGTERM)
        return n
    def __getattr__(self, name):
        return getattr(self.out, name)

argv = json.loads(sys.argv[1])
at_banner = bool(os.environ.get("MODULES_AT_BANNER"))
if at_banner:
    sys.stdout = BannerWatch(sys.stdout)
from wavemq_edge.cli.main import main
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
if not at_banner:
    dump()
sys.exit(code)
"""

#: Never needed to print help: the event loop (and ssl with it), crypto, CBOR, stores, system probes,
#: and every part of the package below the command line.
HELP_FORBIDDEN = (
    "asyncio", "ssl", "uvloop", "nacl", "cbor2", "lmdb", "psutil", "tomllib", "typing",
    "wavemq_edge.router", "wavemq_edge.wave", "wavemq_edge.storage", "wavemq_edge.wire", "wavemq_edge.server",
    "wavemq_edge.net", "wavemq_edge.ops", "wavemq_edge.config", "wavemq_edge.client.connection",
    "wavemq_edge.cli.client_cmds", "wavemq_edge.cli.router_cmds", "wavemq_edge.bench.common",
)

#: Never needed to serve: the client library (the parser's ``client.defaults`` aside), the client, demo and
#: ``wv`` commands, the bench (its parser aside), the passphrase KDF.
RUN_FORBIDDEN = (
    "wavemq_edge.client.connection", "wavemq_edge.client.protocol", "wavemq_edge.client.proofs",
    "wavemq_edge.client.messages", "wavemq_edge.cli.client_cmds", "wavemq_edge.cli.demo", "wavemq_edge.cli.wv",
    "wavemq_edge.bench.common", "wavemq_edge.bench.router", "nacl.pwhash",
)


def modules_of(argv: list[str], tmp: Path, env: dict[str, str] | None = None, *,
               at_banner: bool = False) -> tuple[set[str], str]:
    """The modules a child running ``wavemq-edge ARGV`` had imported (at exit, or once ``run``'s banner is
    printed), and its stderr; it must exit 0."""
    import json

    out = tmp / "modules.txt"
    out.unlink(missing_ok=True)
    child_env = {**(env or os.environ), "MODULES_OUT": str(out), "MODULES_AT_BANNER": "1" if at_banner else ""}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(argv)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=child_env, check=False)
    assert out.exists() and done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return set(out.read_text().split()), done.stderr


def loaded(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden packages (or any of their submodules) among ``modules``."""
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"], ["pub", "--help"],
                                  ["status", "--help"], ["bench", "--help"], ["check-store", "--help"]])
def test_help_imports_no_event_loop_crypto_or_router(argv: list[str], tmp_path: Path) -> None:
    modules, err = modules_of(argv, tmp_path)
    assert "wavemq_edge.cli.main" in modules, err
    assert loaded(modules, HELP_FORBIDDEN) == []


def test_run_imports_no_client_demo_or_wv_code(tmp_path: Path) -> None:
    config = tmp_path / "wavemq.toml"
    config.write_text(config_text(tmp_path))
    modules, err = modules_of(["--log-level", "WARNING", "run", str(config)], tmp_path, at_banner=True)
    assert "wavemq_edge.server.shell" in modules and "wavemq_edge.router.core" in modules, err
    assert loaded(modules, RUN_FORBIDDEN) == []


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[RouterProc, dict[str, str]]]:
    """A router, and a service granted publish with a proof file (README's quick start, with ``wv``)."""
    env = {**os.environ, "WAVE_HOME": str(tmp_path / "wave"), "HOME": str(tmp_path / "home")}
    for args in (["mke", "-o", "namespace.ent", "--expiry", "1y", "--nopassphrase"],
                 ["mke", "-o", "service.ent", "--expiry", "1y", "--nopassphrase"],
                 ["rtgrant", "--attester", "namespace.ent", "--subject", "service.ent", "--expiry", "1y",
                  "wavemq:publish@namespace.ent/*"],
                 ["rtprove", "--subject", "service.ent", "-o", "proof.pem", "wavemq:publish@namespace.ent/*"]):
        subprocess.run([WV, *args], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=TIMEOUT_S)
    config = tmp_path / "wavemq.toml"
    config.write_text(config_text(tmp_path))
    router = RouterProc(config, env).start()
    try:
        yield router, env
    finally:
        router.stop()


def test_one_shot_pub_imports_no_store_probe_kdf_or_router(site: tuple[RouterProc, dict[str, str]],
                                                           tmp_path: Path) -> None:
    router, env = site
    modules, err = modules_of(["pub", "--router", router.address, "--entity", str(tmp_path / "service.ent"),
                               "--namespace", str(tmp_path / "namespace.ent"), "--proof", str(tmp_path / "proof.pem"),
                               "sensors/t1", "21.5"], tmp_path, env)
    assert "wavemq_edge.client.connection" in modules and err == "", err
    assert loaded(modules, ("lmdb", "psutil", "uvloop", "nacl.pwhash", "wavemq_edge.wave.store",
                            "wavemq_edge.router", "wavemq_edge.storage", "wavemq_edge.server", "wavemq_edge.net",
                            "wavemq_edge.config", "wavemq_edge.bench.common", "wavemq_edge.cli.router_cmds")) == []


@pytest.mark.parametrize(("command", "flag"), [("pub", "--persist"), ("sub", "--count"), ("run", "--listen"),
                                               ("bench", "--runs"), ("check-store", "--config"),
                                               ("status", "--json"), ("demo", "--keep")])
def test_a_commands_flags_are_there_when_it_is_used(command: str, flag: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A subcommand's flags are added only when it is used (cli/main.py ``_SubcommandParser``): its help
    still lists them, its flags parse, and an unknown flag is still refused."""
    from wavemq_edge.cli.main import _build_parser, main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and flag in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main([command, "--no-such-flag"])
    assert done.value.code == 2 and "wavemq-edge" in capsys.readouterr().err  # unrecognized, or required missing
    assert _build_parser().parse_args(["pub", "--namespace", "ns", "--persist", "a/b"]).persist is True
