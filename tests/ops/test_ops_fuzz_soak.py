"""Soak (slow set: ``ci/test -m slow``): a long frame fuzz against a real router levels off in memory.

Under a 300 000-case fuzz the router's RSS climbed 35 -> 81 MB and was still rising. A tracemalloc diff
shows the growth is the replay guard (``wave/replay.py``): every correctly signed request is remembered,
even one refused afterwards for want of a proof, at ~350 bytes each, up to 200 000 ids (~70 MB) whatever
the memory budget. A bounded cache filling, not a leak; the window is now sized from ``memoryBudget``
(a quarter of it, ``ops/budget.py``), so a fuzz fills it and RSS levels off inside the budget.

Here with a 32 MB budget (a window of ~23 800 ids): 240 000 cases, half of them signed publishes with
unknown proofs, the rest random and malformed frames. RssAnon is sampled throughout; once the window is
full (the first half) it must stay flat (within a few MB) for the second half, and within the budget
+ 10 %.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from frame_fuzz import fuzz
from memory_load import RssSampler
from ops_helpers import OpsRouter, base_env, make_site
from router_proc import config_text

from wavemq_edge.wave import load_entity_secret

MB = 1024 * 1024
CASES = 240_000
STEPS = 8
BUDGET_MB = 32
#: RssAnon may still move this much over the second half (allocator noise, the sampler's resolution).
FLAT_SLACK = 3 * MB


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_long_frame_fuzz_rss_levels_off(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    make_site(tmp_path, env)
    cfg = tmp_path / "wavemq.toml"
    cfg.write_text(config_text(tmp_path, flush_interval=30, extra=f"[BudgetConfig]\n  memoryBudget = {BUDGET_MB}\n"
                               "[MetricsConfig]\n  enabled = false\n"))
    router = OpsRouter(cfg, env).start()
    try:
        assert router.proc is not None
        who = load_entity_secret(tmp_path / "service.ent")
        ns = load_entity_secret(tmp_path / "namespace.ent").id
        per_step: list[int] = []
        with RssSampler(router.proc.pid, 0.2) as sampler:
            for step in range(STEPS):
                asyncio.run(asyncio.wait_for(fuzz(router.address, who, ns, CASES // STEPS, seed=step + 1), 600))
                per_step.append(sampler.samples[-1][2])
        peaks = [f"{a / MB:.1f}" for a in per_step]
        half = per_step[STEPS // 2 - 1:]
        assert max(half) - min(half) <= FLAT_SLACK, f"RssAnon after each step (MB): {peaks}"
        assert sampler.max_anon <= BUDGET_MB * MB * 1.1, f"RssAnon after each step (MB): {peaks}"
        print(f"RssAnon after each {CASES // STEPS} cases (MB): {peaks}")
        assert router.terminate() == 0
    finally:
        router.stop()
