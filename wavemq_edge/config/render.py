"""Configuration back to TOML: the effective configuration (``wavemq-edge check-config``) and the
embedded default (``wavemq-edge run`` with no file), both rendered from the schema's table.

The embedded default is generated here, at run time, rather than kept as a hand-written file: a file
repeated the schema's defaults by hand and listed only some of the keys, so the two could drift apart
unnoticed. ``check-config`` is unaffected by the choice: it always prints the *effective* configuration,
every key with its value and unit, whatever file (or none) it was given; and the generated default
documents every key, so ``default_config_toml()`` is also a complete starting file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from .model import Config, ListenAddress
from .schema import SECTIONS, Key

__all__ = ["DEFAULT_SOURCE", "default_config_toml", "num", "render_config", "toml_value"]

#: ``Config.source`` of the embedded default (error messages and the check-config header name it).
DEFAULT_SOURCE: Final = "<embedded default>"


def num(x: float) -> str:
    """A number as TOML and people write it: ``30``, not ``30.0``."""
    return str(int(x)) if float(x).is_integer() else str(x)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return num(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Path):
        return toml_value(str(value))
    if isinstance(value, ListenAddress):
        return toml_value(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if value is None:
        return '""'
    return repr(value)


def _key_line(key: Key, value: object) -> str:
    unit = f"  # {key.unit}s" if key.unit and key.unit != "MB" else ("  # MB" if key.unit else "")
    return f"  {key.name} = {toml_value(value)}{unit}"


_RENDER_ORDER: Final[tuple[tuple[str, Callable[[Config], object]], ...]] = (
    ("WaveConfig", lambda c: c.wave),
    ("QueueConfig", lambda c: c.queue),
    ("LocalConfig", lambda c: c.local),
    ("PeerConfig", lambda c: c.peer),
    ("RoutingConfig", lambda c: c.routing),
    ("LimitsConfig", lambda c: c.limits),
    ("BudgetConfig", lambda c: c.budget),
    ("MetricsConfig", lambda c: c.metrics),
    ("MqttConfig", lambda c: c.mqtt),
)


def render_config(config: Config) -> str:
    """The effective configuration, defaults filled in, as TOML that ``parse_config`` reads back."""
    lines = [f"# effective configuration of {config.source}"]
    for name, get in _RENDER_ORDER:
        obj = get(config)
        lines.append(f"[{name}]")
        for key in SECTIONS[name]:
            if not key.ignored:
                lines.append(_key_line(key, getattr(obj, key.attr)))
        if name == "WaveConfig":
            for sp in config.wave.storage:
                lines.append(f"  [WaveConfig.storage.{sp.name}]")
                lines.append(f"    provider = {toml_value(sp.provider)}")
                lines.append(f"    url = {toml_value(sp.url)}")
                lines.append(f"    version = {toml_value(sp.version)}")
        if name == "RoutingConfig":
            for r in config.routing.routers:
                lines.append("  [[RoutingConfig.Router]]")
                lines.append(f"    Namespace = {toml_value(r.namespace)}")
                lines.append(f"    Address = {toml_value(str(r.address))}")
        if name == "MqttConfig":
            for u in config.mqtt.users:
                lines.append("  [[MqttConfig.User]]")
                lines += [f"    username = {toml_value(u.username)}",
                          f"    passwordHash = {toml_value(u.password_hash)}", f"    entity = {toml_value(u.entity)}",
                          f"    namespace = {toml_value(u.namespace)}", f"    proofs = {toml_value(u.proofs)}"]
        lines.append("")
    return "\n".join(lines)


def default_config_toml() -> str:
    """The embedded default: every key of the schema at its default, with its meaning as a comment.
    A single site router on loopback with no uplink; relative paths are under the state directory."""
    lines = [
        "# wavemq_edge embedded default: a single site router on loopback, no uplink.",
        "# Generated from the schema (wavemq_edge/config/schema.py); relative paths are under the state directory.",
    ]
    for name, keys in SECTIONS.items():
        lines.append(f"[{name}]")
        for key in keys:
            if key.ignored:
                continue
            if key.doc:
                lines.append(f"  # {key.doc}")
            lines.append(_key_line(key, key.default))
        lines.append("")
    return "\n".join(lines)
