"""``wavemq.toml`` -> typed, frozen configuration with defaults and validation.

The file format is WAVEMQ's (``seeds/wavemq-README.md``; ``wavemq-behaviour.md`` §7): sections
``WaveConfig``, ``QueueConfig``, ``LocalConfig``, ``PeerConfig`` and ``RoutingConfig``. Like the original
(BurntSushi/toml), section and key names match case-insensitively, so ``listenAddr`` and ``ListenAddr``
are the same key.

Where the original applied Go zero values to missing keys (a ``flushInterval`` of 0 spins the flush loop;
a ``queueExpiry`` of 0 ends every subscription at once), every key here has a default, listed in
``DEFAULTS_DOC`` and the README, and every value is checked against a rule. Errors name the file, the
key, the value and the rule: ``wavemq.toml: QueueConfig.flushInterval = 0: must be >= 1 second``.
Unknown keys are errors with a did-you-mean suggestion, because a misspelt key silently falling back to
a default is how a gateway ends up with a 100-message queue.

Paths that are relative are taken relative to the directory of the config file (the embedded default
resolves them under the state directory), so a unit file need not set a working directory.

Sections of our own (``LimitsConfig``, ``BudgetConfig``, ``MetricsConfig``) and our own keys in WAVEMQ's
sections (``QueueConfig.journalDir``, ``PeerConfig.keepaliveInterval`` ...) also have defaults, so a
WAVEMQ file loads unchanged.
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_CONFIG_TOML",
    "BudgetConfig",
    "Config",
    "ConfigError",
    "LimitsConfig",
    "ListenAddress",
    "LocalConfig",
    "MetricsConfig",
    "PeerConfig",
    "QueueConfig",
    "RouterPeer",
    "RoutingConfig",
    "StorageProvider",
    "WaveConfig",
    "default_state_dir",
    "load_config",
    "load_default_config",
    "parse_config",
    "parse_listen_address",
    "validate_namespace_hash",
]

MIB: Final = 1024 * 1024


class ConfigError(ValueError):
    """The configuration is invalid. ``problems`` lists every problem found, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            text = f"{source}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)


# --------------------------------------------------------------------------------------------------
# Typed configuration


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
    #: where the tmpfs crash journal lives; empty = $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR or /dev/shm.
    journal_dir: Path | None


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

    def to_toml(self) -> str:
        """The effective configuration, defaults filled in, as TOML that ``parse_config`` reads back."""
        return _render(self)


# --------------------------------------------------------------------------------------------------
# Schema: one row per key, in the file's spelling, with its default, kind and rule.

# Kinds of values.
_PATH = "path"
_OPT_PATH = "optional path"
_INT = "integer"
_FLOAT = "number"
_BOOL = "boolean"
_STR = "string"
_ADDR = "address"
_PATHS = "list of paths"


@dataclass(frozen=True, slots=True)
class _Key:
    name: str  # spelling in the file (and in error messages)
    attr: str  # dataclass attribute
    kind: str
    default: object  # a value of the file's type; paths are relative to the state directory
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    doc: str = ""
    ignored: bool = False  # accepted for WAVEMQ compatibility, has no effect


_SECTIONS: Final[dict[str, tuple[_Key, ...]]] = {
    "WaveConfig": (
        _Key("database", "database", _PATH, "wave", doc="WAVE database (LMDB) of entities and grants"),
        _Key("defaultToUnrevoked", "default_to_unrevoked", _BOOL, True,
             doc="an unreachable revocation source counts as not revoked"),
        _Key("listenIp", "", _STR, "", ignored=True, doc="waved setting, ignored"),
        _Key("httpListenIp", "", _STR, "", ignored=True, doc="waved setting, ignored"),
        _Key("listenUnix", "", _STR, "", ignored=True, doc="waved setting, ignored"),
    ),
    "QueueConfig": (
        _Key("queueDataStore", "queue_data_store", _PATH, "queue", doc="queue LMDB environment"),
        _Key("queueExpiry", "queue_expiry_s", _INT, 86400, 60, 10 * 365 * 86400, "second",
             doc="idle subscription queues are removed after this long"),
        _Key("subscriptionQueueMaxLength", "subscription_queue_max_length", _INT, 10000, 1, 1 << 31, "item"),
        _Key("subscriptionQueueMaxSize", "subscription_queue_max_size_mb", _INT, 100, 1, 1 << 20, "MB"),
        _Key("trunkingQueueMaxLength", "trunking_queue_max_length", _INT, 100000, 1, 1 << 31, "item"),
        _Key("trunkingQueueMaxSize", "trunking_queue_max_size_mb", _INT, 1000, 1, 1 << 20, "MB"),
        _Key("flushInterval", "flush_interval_s", _INT, 30, 1, 3600, "second",
             doc="durable writes happen once per interval (and on shutdown)"),
        _Key("flushSize", "flush_size_mb", _INT, 4, 1, 1024, "MB",
             doc="flush early when this much is waiting to be written"),
        _Key("journalDir", "journal_dir", _OPT_PATH, "",
             doc="tmpfs crash journal; empty = $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR or /dev/shm"),
    ),
    "LocalConfig": (
        _Key("listenAddr", "listen_addr", _ADDR, "127.0.0.1:4516", doc="agent API"),
        _Key("unixSocket", "unix_socket", _OPT_PATH, "", doc="optional agent API Unix socket; empty = off"),
    ),
    "PeerConfig": (
        _Key("listenAddr", "listen_addr", _ADDR, "127.0.0.1:4515", doc="peer (trunk) API"),
        _Key("keepaliveInterval", "keepalive_interval_s", _FLOAT, 5.0, 0.1, 600, "second"),
        _Key("deadAfter", "dead_after_s", _FLOAT, 15.0, 0.5, 3600, "second",
             doc="a link with no traffic for this long is declared dead"),
        _Key("reconnectMin", "reconnect_min_s", _FLOAT, 0.5, 0.01, 600, "second"),
        _Key("reconnectMax", "reconnect_max_s", _FLOAT, 30.0, 0.01, 3600, "second"),
    ),
    "RoutingConfig": (
        _Key("PersistDataStore", "persist_data_store", _PATH, "persist", doc="persisted messages"),
        _Key("RouterEntityFile", "router_entity_file", _PATH, "router.ent", doc="created if missing"),
        _Key("DesignatedNamespaceFiles", "designated_namespace_files", _PATHS, [],
             doc="route proofs (wv rtprove) for the namespaces this router is designated for"),
    ),
    "LimitsConfig": (
        _Key("maxFrameBytes", "max_frame_bytes", _INT, 262144, 1024, 64 * MIB, "byte",
             doc="largest frame accepted from a peer or agent"),
        _Key("maxConnections", "max_connections", _INT, 1024, 1, 1 << 20, "connection"),
        _Key("maxSubscriptionsPerConnection", "max_subscriptions_per_connection", _INT, 256, 1, 1 << 20,
             "subscription"),
        _Key("inflightWindow", "inflight_window", _INT, 64, 1, 65536, "message",
             doc="deliveries sent but not yet acknowledged, per subscription"),
        _Key("handshakeTimeout", "handshake_timeout_s", _FLOAT, 10.0, 0.1, 600, "second"),
    ),
    "BudgetConfig": (
        _Key("memoryBudget", "memory_budget_mb", _INT, 128, 16, 1 << 20, "MB", doc="RSS budget"),
        _Key("diskReserve", "disk_reserve_mb", _INT, 64, 0, 1 << 24, "MB",
             doc="free space kept on each data directory's filesystem"),
        _Key("sampleInterval", "sample_interval_s", _FLOAT, 5.0, 0.1, 3600, "second"),
    ),
    "MetricsConfig": (
        _Key("enabled", "enabled", _BOOL, True),
        _Key("listenAddr", "listen_addr", _ADDR, "127.0.0.1:6060", doc="Prometheus /metrics"),
    ),
}

_ROUTER_KEYS: Final = ("Namespace", "Address")
_STORAGE_KEYS: Final = ("provider", "url", "version")

#: The embedded default used by ``wavemq-edge run`` with no file: loopback listeners, data in the
#: state directory, no uplink. It is the seed's site-router file without the placeholder uplink.
DEFAULT_CONFIG_TOML: Final = """\
# wavemq_edge embedded default: a single site router on loopback.
# Relative paths are under the state directory.
[WaveConfig]
  database = "wave"
  defaultToUnrevoked = true

[QueueConfig]
  queueDataStore = "queue"
  queueExpiry = 86400
  subscriptionQueueMaxLength = 10000
  subscriptionQueueMaxSize = 100
  trunkingQueueMaxLength = 100000
  trunkingQueueMaxSize = 1000
  flushInterval = 30

[LocalConfig]
  listenAddr = "127.0.0.1:4516"

[PeerConfig]
  listenAddr = "127.0.0.1:4515"

[RoutingConfig]
  PersistDataStore = "persist"
  RouterEntityFile = "router.ent"
"""


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where data lives when a path is not given: ``$WAVEMQ_STATE_DIR``, systemd's ``$STATE_DIRECTORY``,
    ``$XDG_STATE_HOME/wavemq-edge``, else ``~/.local/state/wavemq-edge``."""
    e = os.environ if env is None else env
    if e.get("WAVEMQ_STATE_DIR"):
        return Path(e["WAVEMQ_STATE_DIR"])
    if e.get("STATE_DIRECTORY"):
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(e["STATE_DIRECTORY"].split(":")[0])
    if e.get("XDG_STATE_HOME"):
        return Path(e["XDG_STATE_HOME"]) / "wavemq-edge"
    return Path.home() / ".local" / "state" / "wavemq-edge"


# --------------------------------------------------------------------------------------------------
# Value checks


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``host:port`` (``[v6]:port`` for IPv6). Raises ValueError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("must be host:port, for example 127.0.0.1:4516")
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise ValueError("an IPv6 address is written [address]:port, for example [::1]:4516")
        host, port_text = text[1:close], text[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError("must be host:port, for example 127.0.0.1:4516")
        if ":" in host:
            raise ValueError("an IPv6 address is written [address]:port, for example [::1]:4516")
        if " " in host or not all(c.isalnum() or c in ".-_" for c in host):
            raise ValueError(f"{host!r} is not a host name or IPv4 address")
    if not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return ListenAddress(host, port)


#: The printable form of a namespace (an entity hash): 48 characters of URL-safe base64. WAVE 3 hashes
#: are 34-byte multihashes (``Gy...==``); WAVE-lite's are 36-byte BLAKE2b multihashes (``oOQC...``).
NAMESPACE_HASH_CHARS: Final = 48
_B64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def validate_namespace_hash(text: str) -> None:
    """Raise ValueError unless ``text`` looks like a namespace hash as ``wv inspect`` prints it."""
    rule = (
        "must be a namespace hash: 48 characters of URL-safe base64 as printed by "
        "`wv inspect namespace.ent` (for example GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w==)"
    )
    if not isinstance(text, str) or len(text) != NAMESPACE_HASH_CHARS:
        raise ValueError(rule)
    body = text.rstrip("=")
    if len(text) - len(body) > 2 or any(c not in _B64URL for c in body):
        raise ValueError(rule)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ValueError(rule) from None
    if len(raw) not in (34, 36):
        raise ValueError(rule)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


class _Checker:
    """Collects problems instead of stopping at the first, so one run of check-config shows them all."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[str] = []

    def fail(self, where: str, value: object, rule: str) -> None:
        shown = repr(value) if isinstance(value, str) else _toml_value(value)
        self.problems.append(f"{where} = {shown}: {rule}")

    def path(self, raw: str) -> Path:
        p = Path(os.path.expanduser(raw))
        return p if p.is_absolute() else self.base_dir / p

    def convert(self, where: str, key: _Key, value: object) -> object:
        kind = key.kind
        if kind in (_PATH, _OPT_PATH):
            if not isinstance(value, str):
                self.fail(where, value, f"must be a string (a path), not {_type_name(value)}")
                return None
            if value == "":
                if kind == _PATH:
                    self.fail(where, value, "must not be empty (a path)")
                return None
            if "\x00" in value:
                self.fail(where, value, "a path cannot contain a NUL character")
                return None
            return self.path(value)
        if kind == _PATHS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                self.fail(where, value, "must be a list of non-empty path strings")
                return None
            return tuple(self.path(v) for v in value)
        if kind == _BOOL:
            if not isinstance(value, bool):
                self.fail(where, value, f"must be true or false, not {_type_name(value)}")
                return None
            return value
        if kind == _STR:
            if not isinstance(value, str):
                self.fail(where, value, f"must be a string, not {_type_name(value)}")
                return None
            return value
        if kind == _ADDR:
            if not isinstance(value, str):
                self.fail(where, value, f"must be a string host:port, not {_type_name(value)}")
                return None
            try:
                return parse_listen_address(value)
            except ValueError as exc:
                self.fail(where, value, str(exc))
                return None
        if kind in (_INT, _FLOAT):
            ok_types: tuple[type, ...] = (int,) if kind == _INT else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok_types):
                self.fail(where, value, f"must be a{'n' if kind == _INT else ''} {kind}, not {_type_name(value)}")
                return None
            assert isinstance(value, (int, float))
            if isinstance(value, float) and value != value:
                self.fail(where, value, "must be a number, not NaN")
                return None
            if key.minimum is not None and value < key.minimum:
                self.fail(where, value, f"must be >= {_num(key.minimum)}{_unit(key.unit, key.minimum)}")
                return None
            if key.maximum is not None and value > key.maximum:
                self.fail(where, value, f"must be <= {_num(key.maximum)}{_unit(key.unit, key.maximum)}")
                return None
            return int(value) if kind == _INT else float(value)
        raise AssertionError(kind)  # pragma: no cover - schema bug


def _unit(unit: str, amount: float) -> str:
    if not unit:
        return ""
    return f" {unit}" if unit == "MB" or amount == 1 else f" {unit}s"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _suggest(name: str, candidates: list[str], kind: str) -> str:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else f"; known {kind}s: {', '.join(candidates)}"


def _fold(table: Mapping[str, Any], where: str, names: list[str], check: _Checker,
          kind: str = "key") -> dict[str, tuple[str, Any]]:
    """Map each key of ``table`` to its canonical name, case-insensitively. Returns canonical -> (spelling,
    value). Unknown and repeated (differing only in case) keys are reported."""
    by_lower = {n.lower(): n for n in names}
    out: dict[str, tuple[str, Any]] = {}
    for raw_key, value in table.items():
        canon = by_lower.get(raw_key.lower())
        prefix = f"{where}." if where else ""
        if canon is None:
            check.problems.append(f"unknown {kind} {prefix}{raw_key}{_suggest(raw_key, names, kind)}")
            continue
        if canon in out:
            check.problems.append(
                f"{prefix}{raw_key} repeats {prefix}{out[canon][0]} (keys are case-insensitive)"
            )
            continue
        out[canon] = (raw_key, value)
    return out


def _section(doc: Mapping[str, tuple[str, Any]], name: str, base_dir: Path, check: _Checker,
             extra: tuple[str, ...] = ()) -> tuple[dict[str, object], dict[str, tuple[str, Any]]]:
    """Convert one section: returns (attr -> value for every schema key, with defaults) and the raw
    entries of ``extra`` (sub-tables handled by the caller)."""
    keys = _SECTIONS[name]
    raw: Mapping[str, Any] = {}
    if name in doc:
        spelled, value = doc[name]
        if not isinstance(value, dict):
            check.fail(spelled, value, "must be a table ([" + name + "])")
        else:
            raw = value
    entries = _fold(raw, name, [k.name for k in keys] + list(extra), check)
    values: dict[str, object] = {}
    default_checker = _Checker(base_dir)
    for key in keys:
        if key.ignored:
            continue
        if key.name in entries:
            spelled, value = entries[key.name]
            converted = check.convert(f"{name}.{key.name}", key, value)
        else:
            converted = default_checker.convert(f"{name}.{key.name}", key, key.default)
        values[key.attr] = converted
    sub = {k: v for k, v in entries.items() if k in extra}
    return values, sub


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None,
                 state_dir: Path | None = None) -> Config:
    """Parse TOML text into a ``Config``. Relative paths resolve against ``base_dir`` (the config file's
    directory); defaults resolve under ``state_dir``. Raises ``ConfigError`` listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    state = state_dir if state_dir is not None else default_state_dir()
    base = base_dir if base_dir is not None else state
    check = _Checker(base)
    sections = [*_SECTIONS]
    doc = _fold(data, "", sections, check, kind="section")

    # Defaults resolve under the state directory; values given in the file against base_dir.
    def section(name: str, extra: tuple[str, ...] = ()) -> tuple[dict[str, object], dict[str, tuple[str, Any]]]:
        return _section(doc, name, state, check, extra)

    wave_v, wave_sub = section("WaveConfig", ("storage",))
    queue_v, _ = section("QueueConfig")
    local_v, _ = section("LocalConfig")
    peer_v, _ = section("PeerConfig")
    routing_v, routing_sub = section("RoutingConfig", ("Router",))
    limits_v, _ = section("LimitsConfig")
    budget_v, _ = section("BudgetConfig")
    metrics_v, _ = section("MetricsConfig")

    storage = _storage_providers(wave_sub.get("storage"), check)
    routers = _routers(routing_sub.get("Router"), check)
    if isinstance(peer_v.get("reconnect_min_s"), float) and isinstance(peer_v.get("reconnect_max_s"), float):
        lo, hi = peer_v["reconnect_min_s"], peer_v["reconnect_max_s"]
        assert isinstance(lo, float) and isinstance(hi, float)
        if lo > hi:
            check.fail("PeerConfig.reconnectMin", lo, f"must be <= PeerConfig.reconnectMax ({_num(hi)})")
    if check.problems:
        raise ConfigError(source, check.problems)
    try:
        return Config(
            source=source,
            wave=WaveConfig(storage=storage, **wave_v),  # type: ignore[arg-type]
            queue=QueueConfig(**queue_v),  # type: ignore[arg-type]
            local=LocalConfig(**local_v),  # type: ignore[arg-type]
            peer=PeerConfig(**peer_v),  # type: ignore[arg-type]
            routing=RoutingConfig(routers=routers, **routing_v),  # type: ignore[arg-type]
            limits=LimitsConfig(**limits_v),  # type: ignore[arg-type]
            budget=BudgetConfig(**budget_v),  # type: ignore[arg-type]
            metrics=MetricsConfig(**metrics_v),  # type: ignore[arg-type]
        )
    except TypeError as exc:  # pragma: no cover - would be a schema bug
        raise ConfigError(source, [f"internal schema error: {exc}"]) from exc


def _storage_providers(entry: tuple[str, Any] | None, check: _Checker) -> tuple[StorageProvider, ...]:
    if entry is None:
        return ()
    spelled, table = entry
    where = f"WaveConfig.{spelled}"
    if not isinstance(table, dict):
        check.fail(where, table, "must be a table of [WaveConfig.storage.<name>] entries")
        return ()
    out: list[StorageProvider] = []
    for name, provider in table.items():
        pw = f"{where}.{name}"
        if not isinstance(provider, dict):
            check.fail(pw, provider, "must be a table with provider, url and version")
            continue
        keys = _fold(provider, pw, list(_STORAGE_KEYS), check)
        vals: dict[str, str] = {}
        for k in _STORAGE_KEYS:
            if k not in keys:
                check.problems.append(f"{pw}.{k} is missing (a storage entry needs provider, url and version)")
                continue
            value = keys[k][1]
            if not isinstance(value, str):
                check.fail(f"{pw}.{k}", value, f"must be a string, not {_type_name(value)}")
                continue
            vals[k] = value
        if len(vals) == 3:
            out.append(StorageProvider(name, vals["provider"], vals["url"], vals["version"]))
    return tuple(out)


def _routers(entry: tuple[str, Any] | None, check: _Checker) -> tuple[RouterPeer, ...]:
    if entry is None:
        return ()
    spelled, items = entry
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        check.fail(f"RoutingConfig.{spelled}", items, "must be an array of tables ([[RoutingConfig.Router]])")
        return ()
    out: list[RouterPeer] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"RoutingConfig.Router[{i}]"
        if not isinstance(item, dict):
            check.fail(where, item, "must be a table with Namespace and Address")
            continue
        keys = _fold(item, where, list(_ROUTER_KEYS), check)
        ns = keys.get("Namespace")
        addr = keys.get("Address")
        if ns is None:
            check.problems.append(f"{where}.Namespace is missing: name the namespace hash this router serves")
        if addr is None:
            check.problems.append(f"{where}.Address is missing: the designated router's host:port")
        if ns is None or addr is None:
            continue
        ok = True
        try:
            validate_namespace_hash(ns[1])
        except ValueError as exc:
            check.fail(f"{where}.Namespace", ns[1], str(exc))
            ok = False
        address: ListenAddress | None = None
        if not isinstance(addr[1], str):
            check.fail(f"{where}.Address", addr[1], "must be a string host:port")
        else:
            try:
                address = parse_listen_address(addr[1])
                if address.port == 0:
                    raise ValueError("port 0 cannot be dialled; name the designated router's port")
            except ValueError as exc:
                check.fail(f"{where}.Address", addr[1], f"{exc} (the designated router's host:port)")
                address = None
        if ok and address is not None:
            if ns[1] in seen:
                check.fail(f"{where}.Namespace", ns[1],
                           f"already routed by RoutingConfig.Router[{seen[ns[1]]}]; one uplink per namespace")
                continue
            seen[ns[1]] = i
            out.append(RouterPeer(ns[1], address))
    return tuple(out)


def load_config(path: str | os.PathLike[str], state_dir: Path | None = None) -> Config:
    """Read and parse a config file. Relative paths in it resolve against its directory."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), ["no such file"]) from None
    except IsADirectoryError:
        raise ConfigError(str(p), ["is a directory, not a config file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [f"not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot be read: {exc.strerror}"]) from None
    return parse_config(text, source=str(p), base_dir=p.resolve().parent, state_dir=state_dir)


def load_default_config(state_dir: Path | None = None) -> Config:
    """The embedded default, with its paths under ``state_dir`` (see ``default_state_dir``)."""
    state = state_dir if state_dir is not None else default_state_dir()
    return parse_config(DEFAULT_CONFIG_TOML, source="<embedded default>", base_dir=state, state_dir=state)


# --------------------------------------------------------------------------------------------------
# Rendering the effective config (``wavemq-edge check-config``)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Path):
        return _toml_value(str(value))
    if isinstance(value, ListenAddress):
        return _toml_value(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        return '""'
    return repr(value)


_RENDER_ORDER: Final[tuple[tuple[str, Callable[[Config], object]], ...]] = (
    ("WaveConfig", lambda c: c.wave),
    ("QueueConfig", lambda c: c.queue),
    ("LocalConfig", lambda c: c.local),
    ("PeerConfig", lambda c: c.peer),
    ("RoutingConfig", lambda c: c.routing),
    ("LimitsConfig", lambda c: c.limits),
    ("BudgetConfig", lambda c: c.budget),
    ("MetricsConfig", lambda c: c.metrics),
)


def _render(config: Config) -> str:
    lines = [f"# effective configuration of {config.source}"]
    for name, get in _RENDER_ORDER:
        obj = get(config)
        lines.append(f"[{name}]")
        for key in _SECTIONS[name]:
            if key.ignored:
                continue
            value = getattr(obj, key.attr)
            unit = f"  # {key.unit}s" if key.unit and key.unit != "MB" else ("  # MB" if key.unit else "")
            lines.append(f"  {key.name} = {_toml_value(value)}{unit}")
        if name == "WaveConfig":
            for sp in config.wave.storage:
                lines.append(f"  [WaveConfig.storage.{sp.name}]")
                lines.append(f"    provider = {_toml_value(sp.provider)}")
                lines.append(f"    url = {_toml_value(sp.url)}")
                lines.append(f"    version = {_toml_value(sp.version)}")
        if name == "RoutingConfig":
            for r in config.routing.routers:
                lines.append("  [[RoutingConfig.Router]]")
                lines.append(f"    Namespace = {_toml_value(r.namespace)}")
                lines.append(f"    Address = {_toml_value(str(r.address))}")
        lines.append("")
    return "\n".join(lines)


def defaults_doc() -> str:
    """Markdown table of every key, its default and its rule (used in the README)."""
    rows = ["| Key | Default | Rule | Meaning |", "|---|---|---|---|"]
    for name, keys in _SECTIONS.items():
        for key in keys:
            rule = key.kind
            if key.minimum is not None:
                rule += f", {_num(key.minimum)}..{_num(key.maximum or 0)} {key.unit}".rstrip()
            default = _toml_value(key.default) if key.default != "" else '"" (off/auto)'
            rows.append(f"| `{name}.{key.name}` | `{default}` | {rule} | {key.doc} |")
    return "\n".join(rows)


def with_overrides(config: Config, **sections: object) -> Config:
    """A copy of ``config`` with whole sections replaced (tests and the embedded default use this)."""
    names = {f.name for f in fields(Config)}
    unknown = set(sections) - names
    if unknown:
        raise TypeError(f"unknown config sections: {sorted(unknown)}")
    return replace(config, **sections)  # type: ignore[arg-type]

