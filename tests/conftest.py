"""Shared pytest set-up: a hypothesis profile that suits CI's 2-core machine."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,  # a loaded 2-core CI machine makes per-example deadlines flaky
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "200")),
)
settings.load_profile("ci")
