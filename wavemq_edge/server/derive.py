"""Config -> the options each part takes, derived once.

``Config`` keeps the file's vocabulary (sizes in MB, intervals as the file's integers, an empty
``journalDir`` meaning "the runtime directory"); each part takes its own options type in its own units
(bytes, float seconds, a resolved directory). This module is the one place that translates: every MB ->
bytes conversion and every "empty means the default" resolution happens here, so a part never reads
``Config`` and a unit is never converted twice.

Why this lives in ``server/`` and not in ``config/``: ``config`` is the bottom layer of the import-linter
contract (it imports nothing of ours), while a derive function must import the option type of every part
it builds (storage, router, trunk, ops, net). Only the layer on top of all of them, the daemon shell, may
import them all, so derive sits there and ``config`` stays importable by everything.

Each function takes the whole ``Config`` (whose ``environment`` carries the variables read at load time)
and returns a frozen value; calling it twice gives equal values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Config
from ..config.units import MIB
from ..mqtt.hub import MqttOptions
from ..net.slots import SlotLimits
from ..ops.budget import BudgetSettings, FitInputs, replay_window_entries
from ..router import OnDiskFull, RouterOptions
from ..router.trunk import TrunkOptions
from ..storage import PersistOptions, QueueLimits, StoreOptions
from ..storage.options import DEFAULT_MAX_MAP_SIZE, FLUSH_SETTLE_S

__all__ = [
    "AgentServerOptions",
    "BudgetSettings",
    "TrunkSettings",
    "agent_server_options",
    "budget_settings",
    "fit_inputs",
    "journal_dir",
    "mqtt_settings",
    "ops_environment",
    "persist_options",
    "router_options",
    "store_options",
    "subscription_limits",
    "trunk_settings",
    "uplink_limits",
]

#: LMDB ``max_dbs`` of the queue store is at least this: one named database per queue.
MIN_MAX_QUEUES = 1024
#: Listen backlog of the agent listener, at most this (the kernel's usual somaxconn ceiling).
MAX_LISTEN_BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class AgentServerOptions:
    """The keyword arguments of ``net.agent_server.AgentServer`` and of its listener."""

    max_connections: int
    max_frame_bytes: int
    handshake_timeout_s: float
    frame_stall_timeout_s: float
    #: who may take a connection slot (``net/slots.py``)
    slots: SlotLimits
    #: ``backlog`` of ``loop.create_server`` for ``LocalConfig.listenAddr``.
    listen_backlog: int


@dataclass(frozen=True, slots=True)
class TrunkSettings:
    """Everything the trunk glue takes from the configuration: the sessions' options, the bounds of each
    uplink's queue and the uplink dialer's reconnect back-off."""

    options: TrunkOptions
    uplink_limits: QueueLimits
    reconnect_min_s: float
    reconnect_max_s: float


def journal_dir(config: Config) -> str:
    """The crash journal's directory: ``QueueConfig.journalDir``, or when it is empty the runtime
    directory from the environment read at load time (``Environment.journal_dir``)."""
    given = config.queue.journal_dir
    return str(given) if given is not None else config.environment.journal_dir


def store_options(config: Config) -> StoreOptions:
    """The queue store (``QueueConfig``): one LMDB queue per subscription and uplink, so ``max_queues``
    grows with ``LimitsConfig.maxConnections``."""
    q = config.queue
    return StoreOptions(
        path=str(q.queue_data_store),
        journal_dir=journal_dir(config),
        flush_interval_s=float(q.flush_interval_s),
        flush_bytes=q.flush_size_mb * MIB,
        max_queues=max(MIN_MAX_QUEUES, config.limits.max_connections * 2),
        shed_when_full=q.on_disk_full == OnDiskFull.DROP_OLDEST.value,
        flush_settle_s=FLUSH_SETTLE_S,
    )


def persist_options(config: Config) -> PersistOptions:
    """The persisted-message store (``RoutingConfig.PersistDataStore``), flushed on the queue's schedule."""
    q = config.queue
    return PersistOptions(
        path=str(config.routing.persist_data_store),
        journal_dir=journal_dir(config),
        flush_interval_s=float(q.flush_interval_s),
        flush_bytes=q.flush_size_mb * MIB,
    )


def subscription_limits(config: Config) -> QueueLimits:
    """Bounds of each subscription queue (``subscriptionQueueMax*``, ``queueExpiry``)."""
    q = config.queue
    return QueueLimits(
        max_length=q.subscription_queue_max_length,
        max_bytes=q.subscription_queue_max_size_mb * MIB,
        expiry_s=float(q.queue_expiry_s),
    )


def uplink_limits(config: Config) -> QueueLimits:
    """Bounds of each uplink's trunk queue (``trunkingQueueMax*``, ``queueExpiry``)."""
    q = config.queue
    return QueueLimits(
        max_length=q.trunking_queue_max_length,
        max_bytes=q.trunking_queue_max_size_mb * MIB,
        expiry_s=float(q.queue_expiry_s),
    )


def router_options(config: Config) -> RouterOptions:
    """The router core (``router/core.py``); what the file does not set keeps ``RouterOptions``' default."""
    return RouterOptions(
        subscription_limits=subscription_limits(config),
        max_subscriptions_per_connection=config.limits.max_subscriptions_per_connection,
        inflight_window=config.limits.inflight_window,
        on_disk_full=OnDiskFull(config.queue.on_disk_full),
        disk_reserve_bytes=config.budget.disk_reserve_mb * MIB,
        replay_window_max=replay_window_entries(config.budget.memory_budget_mb * MIB),
    )


def trunk_settings(config: Config) -> TrunkSettings:
    """The trunk (``router/trunk.py`` sessions and ``net/trunk_net.py``): keepalive and dead-link timing
    from ``PeerConfig``, the frame bound shared with agents, uplink queue bounds and back-off."""
    p = config.peer
    options = TrunkOptions(keepalive_s=p.keepalive_interval_s, dead_after_s=p.dead_after_s,
                           max_frame_bytes=config.limits.max_frame_bytes, window=p.max_inflight)
    return TrunkSettings(options=options, uplink_limits=uplink_limits(config),
                         reconnect_min_s=p.reconnect_min_s, reconnect_max_s=p.reconnect_max_s)


def agent_server_options(config: Config) -> AgentServerOptions:
    """The agent server (``net/agent_server.py``) and its TCP listener (``LimitsConfig``)."""
    lim = config.limits
    return AgentServerOptions(
        max_connections=lim.max_connections,
        max_frame_bytes=lim.max_frame_bytes,
        handshake_timeout_s=lim.handshake_timeout_s,
        frame_stall_timeout_s=lim.frame_stall_timeout_s,
        slots=SlotLimits(max_connections=lim.max_connections, max_per_address=lim.max_connections_per_address,
                         max_handshakes=lim.max_handshakes, handshake_drop_start=lim.handshake_drop_start,
                         handshake_drop_rate=lim.handshake_drop_rate,
                         max_handshakes_per_address=lim.max_handshakes_per_address),
        listen_backlog=min(MAX_LISTEN_BACKLOG, lim.max_connections),
    )


@dataclass(frozen=True, slots=True)
class MqttSettings:
    options: MqttOptions
    slots: SlotLimits
    listen_backlog: int


def mqtt_settings(config: Config) -> MqttSettings:
    """The MQTT front door (``MqttConfig``); its connection slots take the agent pool's per-address and
    handshake bounds (``LimitsConfig``) with their own ``maxConnections``."""
    m, lim = config.mqtt, config.limits
    options = MqttOptions(max_packet_bytes=m.max_packet_size, connect_timeout_s=m.connect_timeout_s,
                          packet_stall_timeout_s=lim.frame_stall_timeout_s, receive_maximum=m.receive_maximum,
                          max_inflight=m.max_inflight, max_keepalive_s=m.max_keepalive_s,
                          topic_alias_maximum=m.topic_alias_maximum)
    slots = SlotLimits(max_connections=m.max_connections, max_per_address=min(lim.max_connections_per_address,
                                                                               m.max_connections),
                       max_handshakes=lim.max_handshakes, handshake_drop_start=lim.handshake_drop_start,
                       handshake_drop_rate=lim.handshake_drop_rate,
                       max_handshakes_per_address=lim.max_handshakes_per_address)
    return MqttSettings(options, slots, min(MAX_LISTEN_BACKLOG, m.max_connections))


def budget_settings(config: Config) -> BudgetSettings:
    """The budget watch (``BudgetConfig``) and the directories it watches."""
    b = config.budget
    return BudgetSettings(
        memory_budget_bytes=b.memory_budget_mb * MIB,
        disk_reserve_bytes=b.disk_reserve_mb * MIB,
        data_dirs=(str(config.queue.queue_data_store), str(config.routing.persist_data_store),
                   str(config.wave.database)),
        sample_interval_s=b.sample_interval_s,
        shed_at_reserve=config.queue.on_disk_full == OnDiskFull.DROP_OLDEST.value,
    )


def fit_inputs(config: Config, *, disk_free: Mapping[str, int], available_memory: int,
               cgroup_memory_max: int | None) -> FitInputs:
    """The start-up check that the configured worst case fits the machine (``ops/budget.py``
    ``check_fit``): the configured side from ``config``, the machine's side as measured by the caller."""
    q = config.queue
    budget = budget_settings(config)
    return FitInputs(
        memory_budget=budget.memory_budget_bytes,
        disk_reserve=budget.disk_reserve_bytes,
        queue_dir=budget.queue_dir,
        subscription_max_bytes=q.subscription_queue_max_size_mb * MIB,
        subscription_max_length=q.subscription_queue_max_length,
        trunk_max_bytes=q.trunking_queue_max_size_mb * MIB,
        trunk_max_length=q.trunking_queue_max_length,
        trunk_queues=len(config.routing.routers),
        max_map_bytes=DEFAULT_MAX_MAP_SIZE,
        flush_bytes=q.flush_size_mb * MIB,
        journal_max_bytes=store_options(config).journal_max_bytes,
        disk_free=disk_free,
        available_memory=available_memory,
        cgroup_memory_max=cgroup_memory_max,
        inflight_window=config.limits.inflight_window,
        max_frame_bytes=config.limits.max_frame_bytes,
        replay_window=replay_window_entries(budget.memory_budget_bytes),
    )


def ops_environment(config: Config) -> dict[str, str]:
    """The ``env`` mapping ops takes (``OpsRuntime``, ``Notifier``, ``watchdog_interval_s``): the
    variables read at load time, under their own names."""
    return config.environment.to_mapping()
