"""A real router with a tiny configured budget: it says at start-up what does not fit, sheds the oldest
queued items (reason ``budget``, counted; under ``onDiskFull = "drop-oldest"``), refuses new durable
subscriptions with a clear error while still accepting ephemeral ones and resumes, flushes early for
memory, and status shows all of it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ops_helpers import WAVEMQ, OpsRouter, base_env, make_site, ops_config, run
from waiting import wait_until

CLIENT = ("--entity", "service.ent", "--namespace", "namespace.ent")
#: BudgetConfig at its smallest memory budget (16 MB: below any Python router's RssAnon) and the largest
#: disk reserve the schema allows (16 TB: more than any test machine has free).
TINY_BUDGET = """
[BudgetConfig]
  memoryBudget = 16
  diskReserve = 16777216
  sampleInterval = 0.2
"""


@pytest.mark.timeout(120)
def test_tiny_budget_sheds_refuses_durable_and_reports(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    make_site(tmp_path, env)
    routers: list[OpsRouter] = []
    sub: subprocess.Popen[str] | None = None
    try:
        # 1. an unconstrained router: a durable subscription with 20 items queued for it
        r1 = OpsRouter(ops_config(tmp_path), env).start()
        routers.append(r1)
        sub = subprocess.Popen([WAVEMQ, "sub", "--router", r1.address, *CLIENT, "--id", "logger", "--count", "1",
                                "t/*"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL)
        r1.wait_subscriptions(1)  # `sub` prints nothing once subscribed: the router's count says it
        assert run([WAVEMQ, "pub", "--router", r1.address, *CLIENT, "t/0", "first"], env, tmp_path).returncode == 0
        out, err = sub.communicate(timeout=30)
        assert sub.returncode == 0, err
        for i in range(1, 21):
            r = run([WAVEMQ, "pub", "--router", r1.address, *CLIENT, f"t/{i}", "x" * 1000], env, tmp_path)
            assert r.returncode == 0, r.stderr
        assert r1.terminate() == 0

        # 2. the same data under a tiny budget, with the policy that sheds (the default refuses instead:
        #    tests/integration/test_disk_full.py); full status (disk, queue ids) is for the local
        #    operator: the Unix socket, as our own uid
        sock = tmp_path / "agent.sock"
        cfg = ops_config(tmp_path, TINY_BUDGET)
        text = cfg.read_text().replace("[LocalConfig]\n", f'[LocalConfig]\n  unixSocket = "{sock}"\n')
        cfg.write_text(text.replace("[QueueConfig]", '[QueueConfig]\n  onDiskFull = "drop-oldest"'))
        r2 = OpsRouter(cfg, env).start()
        routers.append(r2)
        log = r2.output()
        assert "event=budget_does_not_fit" in log and "diskReserve" in log
        assert "event=budget_pressure kind=memory" in log
        assert "event=budget_pressure kind=disk:" in log and "event=budget_shed items=20" in log
        assert "event=durable_subscriptions_refused" in log

        refused = run([WAVEMQ, "sub", "--router", r2.address, *CLIENT, "--id", "newcomer", "--count", "1", "t/*"],
                      env, tmp_path)
        assert refused.returncode == 1
        assert "disk space" in refused.stderr and "ephemeral" in refused.stderr, refused.stderr

        # an ephemeral subscription still works
        held = r2.subscriptions()  # the durable "logger" record, restored
        eph = subprocess.Popen([WAVEMQ, "sub", "--router", r2.address, *CLIENT, "--count", "1", "t/*"], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
        sub = eph
        r2.wait_subscriptions(held + 1)
        assert run([WAVEMQ, "pub", "--router", r2.address, *CLIENT, "t/eph", "hi"], env, tmp_path).returncode == 0
        out, err = eph.communicate(timeout=30)
        assert eph.returncode == 0 and out.strip() == "t/eph\thi", err

        # two more budget samples (sampleInterval 0.2 s), so every figure below is from after the publish
        def samples() -> int:
            budget = r2.status()["budget"]
            assert isinstance(budget, dict)
            return int(budget["samples"])

        after = samples() + 2
        wait_until(lambda: samples() >= after, 10, "two more budget samples")
        st = run([WAVEMQ, "status", "--router", f"unix:{sock}", "--json"], env, tmp_path)
        assert st.returncode == 0, st.stderr
        status = json.loads(st.stdout)
        assert status["drops"]["budget"] == 20
        assert status["budget"]["refusing_durable"] is True and status["budget"]["refused_durable"] >= 1
        assert status["budget"]["shed_items"] == 20 and status["budget"]["cache_shrinks"] >= 1
        assert status["memory"]["over_budget"] is True
        assert status["memory"]["budget_bytes"] == 16 * 1024 * 1024
        assert status["memory"]["rss_anon_bytes"] > 16 * 1024 * 1024
        assert all(d["low"] for d in status["disk"].values())
        shed = [q for q in status["queue_detail"] if q["drops"].get("budget")]
        # the durable "logger" queue: its 20 items shed; t/eph (published after) is queued there too
        assert len(shed) == 1 and shed[0]["drops"]["budget"] == 20 and shed[0]["depth"] == 1
        assert status["refused"].get("STORAGE_UNAVAILABLE", 0) >= 1

        # the human rendering names the figures
        human = run([WAVEMQ, "status", "--router", f"unix:{sock}"], env, tmp_path)
        assert human.returncode == 0, human.stderr
        for words in ("memory", "budget", "disk", "verifier hit rate", "flush write"):
            assert words in human.stdout, human.stdout
        assert r2.terminate() == 0
    finally:
        if sub is not None and sub.poll() is None:
            sub.kill()
            sub.wait(timeout=10)
        for r in routers:
            r.stop()
