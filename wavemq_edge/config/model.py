"""The typed configuration: one frozen dataclass per section of ``wavemq.toml``, and ``Config`` over them.

Attribute names carry their unit (``_s``, ``_mb``): sizes stay in the file's MB here, and
``server/derive.py`` turns them into the bytes each part takes. Values are only ever built by the
loader (``load.py``), which has checked every one against its rule in ``schema.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .environment import Environment

__all__ = [
    "BudgetConfig",
    "Config",
    "LimitsConfig",
    "ListenAddress",
    "LocalConfig",
    "MetricsConfig",
    "MqttConfig",
    "MqttUserConfig",
    "PeerConfig",
    "QueueConfig",
    "RouterPeer",
    "RoutingConfig",
    "StorageProvider",
    "WaveConfig",
]



@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A ``host:port`` to listen on or dial. IPv6 hosts are written ``[::1]:4516``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StorageProvider:
    """A ``[WaveConfig.storage.<name>]`` entry. Kept for compatibility; wavemq_edge does not contact
    WAVE storage servers (entities and grants come from files and ``wv import``)."""

    name: str
    provider: str
    url: str
    version: str


@dataclass(frozen=True, slots=True)
class WaveConfig:
    database: Path
    default_to_unrevoked: bool
    storage: tuple[StorageProvider, ...]


@dataclass(frozen=True, slots=True)
class QueueConfig:
    queue_data_store: Path
    queue_expiry_s: int
    subscription_queue_max_length: int
    subscription_queue_max_size_mb: int
    trunking_queue_max_length: int
    trunking_queue_max_size_mb: int
    flush_interval_s: int
    #: flush early once this many bytes are waiting for the next flush (our own key, MB).
    flush_size_mb: int
    #: where the tmpfs crash journal lives; None = ``Environment.journal_dir`` ($RUNTIME_DIRECTORY ...).
    journal_dir: Path | None
    #: below ``BudgetConfig.diskReserve``: ``"refuse"`` publishes that need storing (``STORAGE_FULL``), or
    #: ``"drop-oldest"`` queued items (our own key).
    on_disk_full: str = "refuse"


@dataclass(frozen=True, slots=True)
class LocalConfig:
    listen_addr: ListenAddress
    #: optional Unix socket for agents (our own key); None = off.
    unix_socket: Path | None


@dataclass(frozen=True, slots=True)
class PeerConfig:
    listen_addr: ListenAddress
    keepalive_interval_s: float
    dead_after_s: float
    reconnect_min_s: float
    reconnect_max_s: float
    max_inflight: int


@dataclass(frozen=True, slots=True)
class RouterPeer:
    """One ``[[RoutingConfig.Router]]``: the designated router for ``namespace`` at ``address``."""

    namespace: str
    address: ListenAddress


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    persist_data_store: Path
    router_entity_file: Path
    routers: tuple[RouterPeer, ...]
    designated_namespace_files: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Named bounds on what one agent connection may hold (our own section)."""

    max_frame_bytes: int
    max_connections: int
    max_subscriptions_per_connection: int
    inflight_window: int
    handshake_timeout_s: float
    frame_stall_timeout_s: float
    max_connections_per_address: int
    max_handshakes: int
    handshake_drop_start: int
    handshake_drop_rate: int
    max_handshakes_per_address: int
    verify_threads: int


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """RAM and disk budgets watched at runtime (our own section)."""

    memory_budget_mb: int
    disk_reserve_mb: int
    sample_interval_s: float


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus text exposition (our own section); the original served ``127.0.0.1:6060``."""

    enabled: bool
    listen_addr: ListenAddress


@dataclass(frozen=True, slots=True)
class MqttUserConfig:
    """One ``[[MqttConfig.User]]``: a device login and the WAVE identity the router signs with for it."""

    username: str
    password_hash: str
    entity: Path
    namespace: str
    proofs: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The MQTT front door (our own section); ``listen_addr`` None = off. Defaults: ``schema.py``."""

    listen_addr: ListenAddress | None
    cert_file: Path | None
    key_file: Path | None
    max_connections: int
    max_packet_size: int
    connect_timeout_s: float
    receive_maximum: int
    max_inflight: int
    max_keepalive_s: int
    topic_alias_maximum: int
    anonymous_entity: Path | None
    anonymous_namespace: str
    anonymous_proofs: tuple[Path, ...]
    users: tuple[MqttUserConfig, ...]


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    wave: WaveConfig
    queue: QueueConfig
    local: LocalConfig
    peer: PeerConfig
    routing: RoutingConfig
    limits: LimitsConfig
    budget: BudgetConfig
    metrics: MetricsConfig
    #: the daemon's environment variables, read once by the loader (``environment.py``).
    environment: Environment
    #: the MQTT front door (``[MqttConfig]``, our own section)
    mqtt: MqttConfig

    def to_toml(self) -> str:
        """The effective configuration, defaults filled in, as TOML that ``parse_config`` reads back."""
        from .render import render_config  # render.py reads these classes: imported here to avoid a cycle

        return render_config(self)
