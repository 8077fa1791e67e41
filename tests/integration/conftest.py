"""Fixtures for integration tests: an isolated environment (WAVE_HOME, state) and router processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proc_helpers import RouterProcess, Site, config_text, wv


@pytest.fixture
def site(tmp_path: Path) -> Site:
    env = dict(os.environ)
    env["WAVE_HOME"] = str(tmp_path / "wave")
    env.pop("WAVEMQ_ROUTER", None)
    env.pop("WAVEMQ_ENTITY", None)
    env["HOME"] = str(tmp_path / "home")
    config = tmp_path / "wavemq.toml"
    config.write_text(config_text(tmp_path))
    s = Site(tmp_path, env, config)
    wv(env, tmp_path, "mke", "-o", "namespace.ent", "--expiry", "1y", "--nopassphrase")
    return s


@pytest.fixture
def router_factory(site: Site) -> Iterator[Callable[..., RouterProcess]]:
    started: list[RouterProcess] = []

    def make(config: Path | None = None) -> RouterProcess:
        r = RouterProcess(config or site.config, site.env)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def router(router_factory: Callable[..., RouterProcess]) -> RouterProcess:
    return router_factory().start()
