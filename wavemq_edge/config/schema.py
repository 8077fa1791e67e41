"""The schema of ``wavemq.toml``: one row per key, in the file's spelling, with its default, kind,
bounds and unit.

This table is the single source of every default: the loader fills missing keys from it, the effective
configuration (``wavemq-edge check-config``) is rendered in its order, and the embedded default that
``wavemq-edge run`` uses with no file is generated from it (``render.default_config_toml``), so no
default is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .units import MIB

__all__ = [
    "ADDR",
    "BOOL",
    "FLOAT",
    "INT",
    "MQTT_USER_KEYS",
    "OPT_ADDR",
    "OPT_PATH",
    "PATH",
    "PATHS",
    "ROUTER_KEYS",
    "SECTIONS",
    "STORAGE_KEYS",
    "STR",
    "Key",
]

# Kinds of values.
PATH: Final = "path"
OPT_PATH: Final = "optional path"
INT: Final = "integer"
FLOAT: Final = "number"
BOOL: Final = "boolean"
STR: Final = "string"
ADDR: Final = "address"
OPT_ADDR: Final = "optional address"
PATHS: Final = "list of paths"


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # spelling in the file (and in error messages)
    attr: str  # dataclass attribute
    kind: str
    default: object  # a value of the file's type; paths are relative to the state directory
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    doc: str = ""
    ignored: bool = False  # accepted for WAVEMQ compatibility, has no effect
    choices: tuple[str, ...] = ()  # a string key's allowed values (empty: any string)


SECTIONS: Final[dict[str, tuple[Key, ...]]] = {
    "WaveConfig": (
        Key("database", "database", PATH, "wave", doc="WAVE database (LMDB) of entities and grants"),
        Key("defaultToUnrevoked", "default_to_unrevoked", BOOL, True,
            doc="an unreachable revocation source counts as not revoked"),
        Key("listenIp", "", STR, "", ignored=True, doc="waved setting, ignored"),
        Key("httpListenIp", "", STR, "", ignored=True, doc="waved setting, ignored"),
        Key("listenUnix", "", STR, "", ignored=True, doc="waved setting, ignored"),
    ),
    "QueueConfig": (
        Key("queueDataStore", "queue_data_store", PATH, "queue", doc="queue LMDB environment"),
        Key("queueExpiry", "queue_expiry_s", INT, 86400, 60, 10 * 365 * 86400, "second",
            doc="idle subscription queues are removed after this long"),
        Key("subscriptionQueueMaxLength", "subscription_queue_max_length", INT, 10000, 1, 1 << 31, "item"),
        Key("subscriptionQueueMaxSize", "subscription_queue_max_size_mb", INT, 100, 1, 1 << 20, "MB"),
        Key("trunkingQueueMaxLength", "trunking_queue_max_length", INT, 100000, 1, 1 << 31, "item"),
        Key("trunkingQueueMaxSize", "trunking_queue_max_size_mb", INT, 1000, 1, 1 << 20, "MB"),
        Key("flushInterval", "flush_interval_s", INT, 30, 1, 3600, "second",
            doc="durable writes happen once per interval (and on shutdown)"),
        Key("flushSize", "flush_size_mb", INT, 4, 1, 1024, "MB",
            doc="flush early when this much is waiting to be written"),
        Key("journalDir", "journal_dir", OPT_PATH, "",
            doc="tmpfs crash journal; empty = $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR or /dev/shm"),
        Key("onDiskFull", "on_disk_full", STR, "refuse", choices=("refuse", "drop-oldest"),
            doc="below BudgetConfig.diskReserve: refuse publishes that need storing, or shed the oldest"),
    ),
    "LocalConfig": (
        Key("listenAddr", "listen_addr", ADDR, "127.0.0.1:4516", doc="agent API"),
        Key("unixSocket", "unix_socket", OPT_PATH, "", doc="optional agent API Unix socket; empty = off"),
    ),
    "PeerConfig": (
        Key("listenAddr", "listen_addr", ADDR, "127.0.0.1:4515", doc="peer (trunk) API"),
        Key("keepaliveInterval", "keepalive_interval_s", FLOAT, 5.0, 0.1, 600, "second"),
        Key("deadAfter", "dead_after_s", FLOAT, 15.0, 0.5, 3600, "second",
            doc="a link with no traffic for this long is declared dead"),
        Key("reconnectMin", "reconnect_min_s", FLOAT, 0.5, 0.01, 600, "second"),
        Key("reconnectMax", "reconnect_max_s", FLOAT, 30.0, 0.01, 3600, "second"),
        Key("maxInflight", "max_inflight", INT, 512, 1, 1 << 16, "message",
            doc="trunk messages sent but not yet acknowledged by the designated router, per lane"),
    ),
    "RoutingConfig": (
        Key("PersistDataStore", "persist_data_store", PATH, "persist", doc="persisted messages"),
        Key("RouterEntityFile", "router_entity_file", PATH, "router.ent", doc="created if missing"),
        Key("DesignatedNamespaceFiles", "designated_namespace_files", PATHS, [],
            doc="route proofs (wv rtprove) for the namespaces this router is designated for"),
    ),
    "LimitsConfig": (
        Key("maxFrameBytes", "max_frame_bytes", INT, 262144, 1024, 64 * MIB, "byte",
            doc="largest frame accepted from a peer or agent"),
        Key("maxConnections", "max_connections", INT, 1024, 1, 1 << 20, "connection"),
        Key("maxSubscriptionsPerConnection", "max_subscriptions_per_connection", INT, 256, 1, 1 << 20,
            "subscription"),
        Key("inflightWindow", "inflight_window", INT, 64, 1, 65536, "message",
            doc="deliveries sent but not yet acknowledged, per subscription"),
        Key("handshakeTimeout", "handshake_timeout_s", FLOAT, 5.0, 0.1, 600, "second",
            doc="a connection that has not authenticated by then is closed (408)"),
        Key("frameStallTimeout", "frame_stall_timeout_s", FLOAT, 30.0, 0.1, 3600, "second",
            doc="a frame that has started must be complete this long after its first byte (408)"),
        Key("maxConnectionsPerAddress", "max_connections_per_address", INT, 512, 1, 1 << 20, "connection",
            doc="from one source address (the Unix socket is exempt)"),
        Key("maxHandshakes", "max_handshakes", INT, 64, 1, 1 << 20, "connection",
            doc="connections still in the handshake (sshd MaxStartups 'full')"),
        Key("handshakeDropStart", "handshake_drop_start", INT, 32, 0, 1 << 20, "connection",
            doc="from this many handshakes in progress new ones are refused at random (MaxStartups 'start')"),
        Key("handshakeDropRate", "handshake_drop_rate", INT, 30, 0, 100, "",
            doc="percent refused at handshakeDropStart, rising to 100 at maxHandshakes (MaxStartups rate)"),
        Key("maxHandshakesPerAddress", "max_handshakes_per_address", INT, 16, 1, 1 << 20, "connection",
            doc="handshakes in progress from one source address (sshd PerSourceMaxStartups)"),
        Key("verifyThreads", "verify_threads", INT, -1, -1, 16, "thread",
            doc="worker threads that check publish signatures beside the event loop; 0: none, "
                "-1: one when the router may use more than one CPU"),
    ),
    "BudgetConfig": (
        Key("memoryBudget", "memory_budget_mb", INT, 128, 16, 1 << 20, "MB", doc="RSS budget"),
        Key("diskReserve", "disk_reserve_mb", INT, 64, 0, 1 << 24, "MB",
            doc="free space kept on each data directory's filesystem"),
        Key("sampleInterval", "sample_interval_s", FLOAT, 5.0, 0.1, 3600, "second"),
    ),
    "MqttConfig": (
        Key("listenAddr", "listen_addr", OPT_ADDR, "",
            doc="MQTT 3.1.1/5.0 listener for devices (1883; 8883 with TLS); empty = off"),
        Key("certFile", "cert_file", OPT_PATH, "", doc="TLS certificate chain (PEM); with keyFile, MQTT over TLS"),
        Key("keyFile", "key_file", OPT_PATH, "", doc="TLS private key (PEM)"),
        Key("maxConnections", "max_connections", INT, 256, 1, 1 << 20, "connection", doc="device connections"),
        Key("maxPacketSize", "max_packet_size", INT, 262144, 64, 268435455, "byte",
            doc="largest packet accepted from a device (announced as Maximum Packet Size)"),
        Key("connectTimeout", "connect_timeout_s", FLOAT, 10.0, 0.1, 600, "second",
            doc="a connection that has not sent CONNECT by then is closed"),
        Key("receiveMaximum", "receive_maximum", INT, 32, 1, 65535, "message",
            doc="QoS 2 publishes a device may leave unreleased (announced as Receive Maximum)"),
        Key("maxInflight", "max_inflight", INT, 32, 1, 65535, "message",
            doc="deliveries to a device not yet acknowledged (also capped by the device's Receive Maximum)"),
        Key("maxKeepalive", "max_keepalive_s", INT, 0, 0, 65535, "second",
            doc="a device keep alive above this (or 0) is lowered to it; 0 = accept the device's"),
        Key("topicAliasMaximum", "topic_alias_maximum", INT, 16, 0, 65535, "alias",
            doc="topic aliases one device may set (announced as Topic Alias Maximum); 0 = none"),
        Key("anonymousEntity", "anonymous_entity", OPT_PATH, "",
            doc="entity secret file devices without a user name act as; empty = anonymous access off"),
        Key("anonymousNamespace", "anonymous_namespace", STR, "", doc="namespace hash of anonymous devices"),
        Key("anonymousProofs", "anonymous_proofs", PATHS, [], doc="proofs (wv rtprove) of anonymousEntity"),
    ),
    "MetricsConfig": (
        Key("enabled", "enabled", BOOL, True),
        Key("listenAddr", "listen_addr", ADDR, "127.0.0.1:6060", doc="Prometheus /metrics"),
    ),
}

ROUTER_KEYS: Final = ("Namespace", "Address")
MQTT_USER_KEYS: Final = ("username", "passwordHash", "entity", "namespace", "proofs")
STORAGE_KEYS: Final = ("provider", "url", "version")
