"""server/derive.py gives every part exactly the options the daemon built by hand before it existed.

Each ``today_*`` function below is a verbatim copy of how ``net/service.py`` (``startup``,
``_start_trunk``) and ``ops/runtime.py`` (``OpsRuntime.__init__``, ``_fit_check``) built a part's options
from ``Config`` at the commit that introduced derive, and ``today_journal_dir`` is the storage layer's
former ``default_journal_dir`` with the environment as a parameter. The tests compare derive's output
with them for the seed files, the board profiles, the embedded default and a file that sets every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wavemq_edge.config import Config, Environment, load_config, load_default_config, parse_config
from wavemq_edge.config.units import MIB
from wavemq_edge.ops.budget import FitInputs, replay_window_entries
from wavemq_edge.router import OnDiskFull, RouterOptions
from wavemq_edge.router.trunk import TrunkOptions
from wavemq_edge.server import derive
from wavemq_edge.storage import PersistOptions, QueueLimits, StoreOptions
from wavemq_edge.storage.options import DEFAULT_MAX_MAP_SIZE

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
XBOS_NS = "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w=="

EVERY_KEY = f"""
[QueueConfig]
queueExpiry = 600
subscriptionQueueMaxLength = 7
subscriptionQueueMaxSize = 3
trunkingQueueMaxLength = 11
trunkingQueueMaxSize = 5
flushInterval = 2
flushSize = 9
journalDir = "/run/given"
[PeerConfig]
keepaliveInterval = 1.5
deadAfter = 4
reconnectMin = 0.25
reconnectMax = 8
[LimitsConfig]
maxFrameBytes = 65536
maxConnections = 5000
maxSubscriptionsPerConnection = 9
inflightWindow = 3
handshakeTimeout = 2.5
[BudgetConfig]
memoryBudget = 48
diskReserve = 0
sampleInterval = 0.5
[[RoutingConfig.Router]]
Namespace = "{XBOS_NS}"
Address = "dr.example:4515"
"""

ENVIRONMENTS = {
    "bare": {},
    "systemd": {"RUNTIME_DIRECTORY": "/run/wavemq-edge:/run/x", "XDG_RUNTIME_DIR": "/run/user/7"},
    "desktop": {"XDG_RUNTIME_DIR": "/run/user/7"},
}


def _configs(env: Environment, tmp: Path) -> dict[str, Config]:
    site = (DATA / "seed-site.toml").read_text().rstrip("\n").splitlines()
    site_xbos = "\n".join(site[:-3]) + "\n" + (DATA / "seed-xbos-lines.toml").read_text()
    out = {
        "embedded default": load_default_config(tmp, environment=env),
        "seed-dr": load_config(DATA / "seed-dr.toml", tmp, environment=env),
        "seed-site + xbos": parse_config(site_xbos, "site.toml", base_dir=tmp, state_dir=tmp, environment=env),
        "every key": parse_config(EVERY_KEY, "every.toml", base_dir=tmp, state_dir=tmp, environment=env),
    }
    for profile in sorted((ROOT / "hw" / "profiles").glob("*.toml")):
        out[profile.stem] = load_config(profile, tmp, environment=env)
    return out


@dataclass(frozen=True)
class Case:
    name: str
    config: Config
    env: Mapping[str, str]


def _cases() -> list[tuple[str, str]]:
    names = ["embedded default", "seed-dr", "seed-site + xbos", "every key"]
    names += [p.stem for p in sorted((ROOT / "hw" / "profiles").glob("*.toml"))]
    return [(c, e) for c in names for e in ENVIRONMENTS]


@pytest.fixture(params=_cases(), ids=lambda p: f"{p[0]}/{p[1]}")
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    config_name, env_name = request.param
    env = ENVIRONMENTS[env_name]
    return Case(config_name, _configs(Environment.from_mapping(env, uid=1000), tmp_path)[config_name], env)


# -------------------------------------------------------------------------------------------------
# Today's construction, copied


def today_journal_dir(environ: Mapping[str, str], uid: int) -> str:
    runtime = environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return runtime.split(":")[0]
    xdg = environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "wavemq-edge")
    return f"/dev/shm/wavemq-edge-{uid}"


def today_store_and_persist(cfg: Config) -> tuple[StoreOptions, PersistOptions]:
    store_options = StoreOptions(
        path=str(cfg.queue.queue_data_store),
        journal_dir=str(cfg.queue.journal_dir) if cfg.queue.journal_dir is not None else None,
        flush_interval_s=float(cfg.queue.flush_interval_s),
        flush_bytes=cfg.queue.flush_size_mb * MIB,
        max_queues=max(1024, cfg.limits.max_connections * 2),
        shed_when_full=cfg.queue.on_disk_full == "drop-oldest",
        flush_settle_s=0.5,  # the router leaves messages still in flight for the next flush
    )
    journal_dir = str(cfg.queue.journal_dir) if cfg.queue.journal_dir is not None else None
    persist = PersistOptions(path=str(cfg.routing.persist_data_store), journal_dir=journal_dir,
                             flush_interval_s=float(cfg.queue.flush_interval_s),
                             flush_bytes=cfg.queue.flush_size_mb * MIB)
    return store_options, persist


def today_router_options(cfg: Config) -> RouterOptions:
    return RouterOptions(
        subscription_limits=QueueLimits(
            max_length=cfg.queue.subscription_queue_max_length,
            max_bytes=cfg.queue.subscription_queue_max_size_mb * MIB,
            expiry_s=float(cfg.queue.queue_expiry_s),
        ),
        max_subscriptions_per_connection=cfg.limits.max_subscriptions_per_connection,
        inflight_window=cfg.limits.inflight_window,
        on_disk_full=OnDiskFull(cfg.queue.on_disk_full),
        disk_reserve_bytes=cfg.budget.disk_reserve_mb * MIB,
        replay_window_max=replay_window_entries(cfg.budget.memory_budget_mb * MIB),
    )


def today_agent_server(cfg: Config) -> dict[str, Any]:
    return {"max_connections": cfg.limits.max_connections, "max_frame_bytes": cfg.limits.max_frame_bytes,
            "handshake_timeout_s": cfg.limits.handshake_timeout_s,
            "backlog": min(1024, cfg.limits.max_connections)}


def today_trunk(cfg: Config) -> tuple[TrunkOptions, QueueLimits, float, float]:
    options = TrunkOptions(keepalive_s=cfg.peer.keepalive_interval_s, dead_after_s=cfg.peer.dead_after_s,
                           max_frame_bytes=cfg.limits.max_frame_bytes, window=cfg.peer.max_inflight)
    limits = QueueLimits(max_length=cfg.queue.trunking_queue_max_length,
                         max_bytes=cfg.queue.trunking_queue_max_size_mb * MIB,
                         expiry_s=float(cfg.queue.queue_expiry_s))
    return options, limits, cfg.peer.reconnect_min_s, cfg.peer.reconnect_max_s


def today_budget(config: Config) -> tuple[int, int, str, list[str], float]:
    b = config.budget
    data_dirs = [str(config.queue.queue_data_store), str(config.routing.persist_data_store),
                 str(config.wave.database)]
    return b.memory_budget_mb * MIB, b.disk_reserve_mb * MIB, data_dirs[0], data_dirs, b.sample_interval_s


def today_fit(cfg: Config, data_dir: str, disk_free: Mapping[str, int], available: int,
              cgroup: int | None) -> FitInputs:
    q = cfg.queue
    return FitInputs(
        memory_budget=cfg.budget.memory_budget_mb * MIB,
        disk_reserve=cfg.budget.disk_reserve_mb * MIB,
        queue_dir=data_dir,
        subscription_max_bytes=q.subscription_queue_max_size_mb * MIB,
        subscription_max_length=q.subscription_queue_max_length,
        trunk_max_bytes=q.trunking_queue_max_size_mb * MIB,
        trunk_max_length=q.trunking_queue_max_length,
        trunk_queues=len(cfg.routing.routers),
        max_map_bytes=DEFAULT_MAX_MAP_SIZE,
        flush_bytes=q.flush_size_mb * MIB,
        journal_max_bytes=StoreOptions(path="").journal_max_bytes,
        disk_free=disk_free,
        available_memory=available,
        cgroup_memory_max=cgroup,
        inflight_window=cfg.limits.inflight_window,
        max_frame_bytes=cfg.limits.max_frame_bytes,
        replay_window=replay_window_entries(cfg.budget.memory_budget_mb * MIB),
    )


# -------------------------------------------------------------------------------------------------
# Derive gives the same


def test_storage_options_match_and_the_journal_dir_is_resolved_as_storage_did(case: Case) -> None:
    store, persist = today_store_and_persist(case.config)
    # Today storage resolved an unset journal directory itself, from os.environ, when it opened.
    resolved = store.journal_dir if store.journal_dir is not None else today_journal_dir(case.env, 1000)
    assert derive.journal_dir(case.config) == resolved
    assert derive.store_options(case.config) == StoreOptions(**{**_fields(store), "journal_dir": resolved})
    assert derive.persist_options(case.config) == PersistOptions(**{**_fields(persist), "journal_dir": resolved})


def test_router_options_match(case: Case) -> None:
    assert derive.router_options(case.config) == today_router_options(case.config)
    assert derive.subscription_limits(case.config) == today_router_options(case.config).subscription_limits


def test_agent_server_options_match(case: Case) -> None:
    got = derive.agent_server_options(case.config)
    want = today_agent_server(case.config)
    assert (got.max_connections, got.max_frame_bytes, got.handshake_timeout_s, got.listen_backlog) == (
        want["max_connections"], want["max_frame_bytes"], want["handshake_timeout_s"], want["backlog"])


def test_trunk_settings_match(case: Case) -> None:
    got = derive.trunk_settings(case.config)
    assert (got.options, got.uplink_limits, got.reconnect_min_s, got.reconnect_max_s) == today_trunk(case.config)
    assert derive.uplink_limits(case.config) == got.uplink_limits


def test_budget_and_fit_match(case: Case) -> None:
    got = derive.budget_settings(case.config)
    memory, disk, queue_dir, data_dirs, interval = today_budget(case.config)
    assert (got.memory_budget_bytes, got.disk_reserve_bytes, got.queue_dir, list(got.data_dirs),
            got.sample_interval_s) == (memory, disk, queue_dir, data_dirs, interval)
    free = {queue_dir: 10 * 1024 * MIB}
    assert derive.fit_inputs(case.config, disk_free=free, available_memory=300 * MIB, cgroup_memory_max=None) == (
        today_fit(case.config, queue_dir, free, 300 * MIB, None))


def test_ops_environment_is_the_environment_read_at_load(case: Case) -> None:
    assert derive.ops_environment(case.config) == dict(case.env)


def test_derive_is_pure(case: Case) -> None:
    for fn in (derive.store_options, derive.persist_options, derive.router_options, derive.trunk_settings,
               derive.agent_server_options, derive.budget_settings):
        assert fn(case.config) == fn(case.config)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
