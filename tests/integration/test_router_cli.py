"""`wavemq-edge run` as a real process, driven by the real CLI commands over 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

from proc_helpers import WAVEMQ, RouterProcess, Site, run


def cli(site: Site, router: RouterProcess, *args: str, input: bytes | None = None,
        timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    cmd, rest = args[0], args[1:]
    return run([WAVEMQ, cmd, "--router", router.address, *rest], site.env, input=input, timeout=timeout,
               cwd=site.dir)


def start_sub(site: Site, router: RouterProcess, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([WAVEMQ, "sub", "--router", router.address, *args], env=site.env, cwd=site.dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    return proc


def test_pub_sub_with_plus_and_star(site: Site, router: RouterProcess) -> None:
    site.entity("service")
    plus = start_sub(site, router, "--entity", "service.ent", "--namespace", "namespace.ent", "--count", "2",
                     "bldg/+/temp")
    star = start_sub(site, router, "--entity", "service.ent", "--namespace", "namespace.ent", "--count", "3",
                     "--json", "bldg/*")
    try:
        router.wait_subscriptions(2)
        for uri, text in [("bldg/r1/temp", "21.5"), ("bldg/r2/humidity", "40"), ("bldg/r2/temp", "19")]:
            r = cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", uri, text)
            assert r.returncode == 0, r.stderr
        out_plus, err = plus.communicate(timeout=20)
        assert plus.returncode == 0, err
        assert out_plus.splitlines() == ["bldg/r1/temp\t21.5", "bldg/r2/temp\t19"]
        out_star, err = star.communicate(timeout=20)
        assert star.returncode == 0, err
        import json

        rows = [json.loads(line) for line in out_star.splitlines()]
        assert [r["uri"] for r in rows] == ["bldg/r1/temp", "bldg/r2/humidity", "bldg/r2/temp"]
        assert rows[0]["payload"][0]["text"] == "21.5"
    finally:
        for p in (plus, star):
            if p.poll() is None:
                p.kill()
                p.communicate()


def test_pub_reads_stdin_and_binary_prints_base64(site: Site, router: RouterProcess) -> None:
    site.entity("service")
    sub = start_sub(site, router, "--entity", "service.ent", "--namespace", "namespace.ent", "--count", "1", "raw")
    try:
        router.wait_subscriptions(1)
        r = cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", "raw",
                input=b"\xff\x00binary")
        assert r.returncode == 0, r.stderr
        out, _ = sub.communicate(timeout=20)
        assert out == "raw\t/wBiaW5hcnk=\n"
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.communicate()


def test_persist_and_query(site: Site, router: RouterProcess) -> None:
    site.entity("service")
    for uri, text, persist in [("p/a", "old", True), ("p/a", "new", True), ("p/b/c", "deep", True),
                               ("pb/x", "not-under-p", True), ("p/volatile", "v", False)]:
        args = ["--persist"] if persist else []
        r = cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", *args, uri, text)
        assert r.returncode == 0, r.stderr
    r = cli(site, router, "query", "--entity", "service.ent", "--namespace", "namespace.ent", "p/*")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["p/a\tnew", "p/b/c\tdeep"]


def test_durable_subscription_resumes_in_order_without_loss(site: Site, router: RouterProcess) -> None:
    site.entity("service")
    args = ["--entity", "service.ent", "--namespace", "namespace.ent", "--id", "logger"]
    first = start_sub(site, router, *args, "--count", "1", "log/*")
    router.wait_subscriptions(1)
    cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", "log/0", "m0")
    out, _ = first.communicate(timeout=20)
    assert out == "log/0\tm0\n"
    for i in range(1, 8):  # the subscriber is away
        r = cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", f"log/{i}", f"m{i}")
        assert r.returncode == 0, r.stderr
    again = run([WAVEMQ, "sub", "--router", router.address, *args, "--count", "7", "log/*"], site.env, timeout=30,
                cwd=site.dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"log/{i}\tm{i}" for i in range(1, 8)]
    r = cli(site, router, "unsub", "--entity", "service.ent", "--namespace", "namespace.ent", "--id", "logger")
    assert r.returncode == 0 and "removed 1" in r.stdout


def test_router_kill9_keeps_queued_messages(site: Site, router_factory) -> None:  # type: ignore[no-untyped-def]
    site.entity("service")
    router = router_factory().start()
    args = ["--entity", "service.ent", "--namespace", "namespace.ent", "--id", "keeper"]
    first = start_sub(site, router, *args, "--count", "1", "k/*")
    router.wait_subscriptions(1)
    cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", "k/0", "first")
    first.communicate(timeout=20)
    for i in range(1, 6):
        cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", f"k/{i}", f"v{i}")
    router.kill9()  # no final flush: the tmpfs journal must carry the queued messages
    router2 = router_factory().start()
    got = run([WAVEMQ, "sub", "--router", router2.address, *args, "--count", "5", "k/*"], site.env, timeout=30,
              cwd=site.dir)
    assert got.returncode == 0, got.stderr + router2.drain()
    assert got.stdout.splitlines() == [f"k/{i}\tv{i}" for i in range(1, 6)]


def test_sigterm_stops_gracefully_and_in_bounded_time(site: Site, router: RouterProcess) -> None:
    t0 = time.monotonic()
    assert router.terminate(timeout=15) == 0
    assert time.monotonic() - t0 < 15
    out = router.drain()
    assert "event=final_flush outcome=ok" in out and "event=stopped" in out


def test_status_command(site: Site, router: RouterProcess) -> None:
    r = cli(site, router, "status", "--json")
    assert r.returncode == 0, r.stderr
    import json

    status = json.loads(r.stdout)
    assert status["subscriptions"] == 0 and status["version"]
    r = cli(site, router, "status")
    assert r.returncode == 0 and "uptime_s" in r.stdout


def test_status_detail_is_for_the_local_operator(site: Site, router_factory: Callable[..., RouterProcess]) -> None:
    # Over TCP any key may authenticate: a summary (no paths, queue ids or addresses). Over the Unix socket
    # our own uid is the router's: the operator, the whole snapshot.
    sock = site.dir / "agent.sock"
    cfg = site.dir / "unix.toml"
    cfg.write_text(site.config.read_text().replace("[LocalConfig]\n", f'[LocalConfig]\n  unixSocket = "{sock}"\n'))
    router = router_factory(cfg).start()
    r = cli(site, router, "status", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["detail"] == "summary" and summary["subscriptions"] == 0
    assert not {"journal", "disk", "queue_detail"} & set(summary)
    human = cli(site, router, "status")
    assert human.returncode == 0 and "a summary" in human.stderr and "unix:PATH" in human.stderr
    r = run([WAVEMQ, "status", "--router", f"unix:{sock}", "--json"], site.env)
    assert r.returncode == 0, r.stderr
    full = json.loads(r.stdout)
    assert full["detail"] == "full" and str(site.dir) in full["journal"]["dir"] and "queue_detail" in full


def test_client_errors_are_one_line(site: Site, router: RouterProcess) -> None:
    site.entity("service")
    r = cli(site, router, "pub", "--namespace", "namespace.ent", "a/b", "x")
    assert r.returncode == 2 and "--entity FILE is required" in r.stderr and "Traceback" not in r.stderr
    r = cli(site, router, "pub", "--entity", "service.ent", "--namespace", "namespace.ent", "a/*", "x")
    assert r.returncode == 2 and "wildcard" in r.stderr
    r = cli(site, router, "pub", "--entity", "missing.ent", "--namespace", "namespace.ent", "a", "x")
    assert r.returncode == 2 and "missing.ent" in r.stderr
    r = run([WAVEMQ, "status", "--router", "127.0.0.1:1"], site.env)
    assert r.returncode == 1 and "cannot connect" in r.stderr
    r = cli(site, router, "sub", "--entity", "service.ent", "--namespace", "namespace.ent", "a//b")
    assert r.returncode == 2 and "empty inner segment" in r.stderr


def test_demo_prints_hello_world_five_times(site: Site) -> None:
    r = run([WAVEMQ, "demo"], site.env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-5:] == ["hello world"] * 5
