"""``wavemq.toml`` -> typed, frozen configuration with defaults and validation.

The file format is WAVEMQ's (``seeds/wavemq-README.md``; ``wavemq-behaviour.md`` §7): sections
``WaveConfig``, ``QueueConfig``, ``LocalConfig``, ``PeerConfig`` and ``RoutingConfig``. Like the original
(BurntSushi/toml), section and key names match case-insensitively, so ``listenAddr`` and ``ListenAddr``
are the same key.

Where the original applied Go zero values to missing keys (a ``flushInterval`` of 0 spins the flush loop;
a ``queueExpiry`` of 0 ends every subscription at once), every key here has a default, listed in the
schema (``schema.py``) and the README, and every value is checked against a rule. Errors name the file,
the key, the value and the rule: ``wavemq.toml: QueueConfig.flushInterval = 0: must be >= 1 second``.
Unknown keys are errors with a did-you-mean suggestion, because a misspelt key silently falling back to
a default is how a gateway ends up with a 100-message queue. Problems are collected, not raised at the
first, so one run of ``check-config`` shows them all.

Paths that are relative are taken relative to the directory of the config file (the embedded default
resolves them under the state directory), so a unit file need not set a working directory.

The loader is also where the process environment is read, once (``environment.py``): the state
directory comes from it, and the result rides on ``Config.environment`` to the parts that need it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .environment import Environment
from .errors import ConfigError
from .model import (
    BudgetConfig,
    Config,
    LimitsConfig,
    ListenAddress,
    LocalConfig,
    MetricsConfig,
    MqttConfig,
    PeerConfig,
    QueueConfig,
    RouterPeer,
    RoutingConfig,
    StorageProvider,
    WaveConfig,
)
from .mqtt_users import check_mqtt, mqtt_users
from .render import DEFAULT_SOURCE, default_config_toml, num, toml_value
from .schema import (
    ADDR,
    BOOL,
    FLOAT,
    INT,
    OPT_ADDR,
    OPT_PATH,
    PATH,
    PATHS,
    ROUTER_KEYS,
    SECTIONS,
    STORAGE_KEYS,
    STR,
    Key,
)
from .values import parse_listen_address, validate_namespace_hash

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["load_config", "load_default_config", "parse_config"]


def _environment(environment: Environment | None) -> Environment:
    """The one place the daemon reads its process environment (when the caller did not pass one)."""
    return environment if environment is not None else Environment.from_mapping(os.environ)


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
        shown = repr(value) if isinstance(value, str) else toml_value(value)
        self.problems.append(f"{where} = {shown}: {rule}")

    def path(self, raw: str) -> Path:
        p = Path(os.path.expanduser(raw))
        return p if p.is_absolute() else self.base_dir / p

    def convert(self, where: str, key: Key, value: object) -> object:
        kind = key.kind
        if kind in (PATH, OPT_PATH):
            if not isinstance(value, str):
                self.fail(where, value, f"must be a string (a path), not {_type_name(value)}")
                return None
            if value == "":
                if kind == PATH:
                    self.fail(where, value, "must not be empty (a path)")
                return None
            if "\x00" in value:
                self.fail(where, value, "a path cannot contain a NUL character")
                return None
            return self.path(value)
        if kind == PATHS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                self.fail(where, value, "must be a list of non-empty path strings")
                return None
            return tuple(self.path(v) for v in value)
        if kind == BOOL:
            if not isinstance(value, bool):
                self.fail(where, value, f"must be true or false, not {_type_name(value)}")
                return None
            return value
        if kind == STR:
            if not isinstance(value, str):
                self.fail(where, value, f"must be a string, not {_type_name(value)}")
                return None
            if key.choices and value not in key.choices:
                self.fail(where, value, "must be one of " + ", ".join(repr(c) for c in key.choices))
                return None
            return value
        if kind == OPT_ADDR and value == "":
            return None
        if kind in (ADDR, OPT_ADDR):
            if not isinstance(value, str):
                self.fail(where, value, f"must be a string host:port, not {_type_name(value)}")
                return None
            try:
                return parse_listen_address(value)
            except ValueError as exc:
                self.fail(where, value, str(exc))
                return None
        if kind in (INT, FLOAT):
            ok_types: tuple[type, ...] = (int,) if kind == INT else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok_types):
                self.fail(where, value, f"must be a{'n' if kind == INT else ''} {kind}, not {_type_name(value)}")
                return None
            assert isinstance(value, (int, float))
            if isinstance(value, float) and value != value:
                self.fail(where, value, "must be a number, not NaN")
                return None
            if key.minimum is not None and value < key.minimum:
                self.fail(where, value, f"must be >= {num(key.minimum)}{_unit(key.unit, key.minimum)}")
                return None
            if key.maximum is not None and value > key.maximum:
                self.fail(where, value, f"must be <= {num(key.maximum)}{_unit(key.unit, key.maximum)}")
                return None
            return int(value) if kind == INT else float(value)
        raise AssertionError(kind)  # pragma: no cover - schema bug


def _unit(unit: str, amount: float) -> str:
    if not unit:
        return ""
    return f" {unit}" if unit == "MB" or amount == 1 else f" {unit}s"


def _suggest(name: str, candidates: list[str], kind: str) -> str:
    import difflib  # only a config with a misspelt name needs it, not the router that loaded one

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
    keys = SECTIONS[name]
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
                 state_dir: Path | None = None, environment: Environment | None = None) -> Config:
    """Parse TOML text into a ``Config``. Relative paths resolve against ``base_dir`` (the config file's
    directory); defaults resolve under ``state_dir`` (``environment.state_dir`` when not given).
    ``environment`` is read from ``os.environ`` when not given. Raises ``ConfigError`` listing every
    problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    env = _environment(environment)
    state = state_dir if state_dir is not None else env.state_dir
    base = base_dir if base_dir is not None else state
    check = _Checker(base)
    sections = [*SECTIONS]
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
    mqtt_v, mqtt_sub = section("MqttConfig", ("User",))
    mqtt_v["users"] = mqtt_users(mqtt_sub.get("User"), check)
    check_mqtt(mqtt_v, check)

    storage = _storage_providers(wave_sub.get("storage"), check)
    routers = _routers(routing_sub.get("Router"), check)
    if isinstance(peer_v.get("reconnect_min_s"), float) and isinstance(peer_v.get("reconnect_max_s"), float):
        lo, hi = peer_v["reconnect_min_s"], peer_v["reconnect_max_s"]
        assert isinstance(lo, float) and isinstance(hi, float)
        if lo > hi:
            check.fail("PeerConfig.reconnectMin", lo, f"must be <= PeerConfig.reconnectMax ({num(hi)})")
    start, full = limits_v.get("handshake_drop_start"), limits_v.get("max_handshakes")
    if isinstance(start, int) and isinstance(full, int) and start > full:
        check.fail("LimitsConfig.handshakeDropStart", start, f"must be <= LimitsConfig.maxHandshakes ({full})")
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
            environment=env,
            mqtt=MqttConfig(**mqtt_v),  # type: ignore[arg-type]
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
        keys = _fold(provider, pw, list(STORAGE_KEYS), check)
        vals: dict[str, str] = {}
        for k in STORAGE_KEYS:
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
        keys = _fold(item, where, list(ROUTER_KEYS), check)
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


def load_config(path: str | os.PathLike[str], state_dir: Path | None = None,
                environment: Environment | None = None) -> Config:
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
    return parse_config(text, source=str(p), base_dir=p.resolve().parent, state_dir=state_dir,
                        environment=environment)


def load_default_config(state_dir: Path | None = None, environment: Environment | None = None) -> Config:
    """The embedded default (``render.default_config_toml``), with its paths under ``state_dir``
    (``Environment.state_dir`` when not given)."""
    env = _environment(environment)
    state = state_dir if state_dir is not None else env.state_dir
    return parse_config(default_config_toml(), source=DEFAULT_SOURCE, base_dir=state, state_dir=state, environment=env)
