"""Configuration: ``wavemq.toml`` -> one typed, frozen ``Config``, plus the environment read once.

The bottom layer of the package: it imports nothing else of ours, and every part above receives its
settings from it (through ``server/derive.py``, which turns a ``Config`` into each part's options).

- ``schema.py``: every key with its default, kind, bounds and unit (the one source of defaults)
- ``model.py``: the frozen dataclasses, one per section, and ``Config``
- ``load.py``: reading and validating a file, with errors that name file, key, value and rule
- ``values.py``: checks of single values (listen addresses, namespace hashes)
- ``render.py``: the effective configuration and the embedded default, rendered as TOML
- ``environment.py``: the daemon's environment variables, read once at load time
- ``units.py``: ``MIB``, defined once for the package
- ``errors.py``: ``ConfigError``
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .environment import Environment
    from .errors import ConfigError
    from .load import load_config, load_default_config, parse_config
    from .model import (
        BudgetConfig,
        Config,
        LimitsConfig,
        ListenAddress,
        LocalConfig,
        MetricsConfig,
        PeerConfig,
        QueueConfig,
        RouterPeer,
        RoutingConfig,
        StorageProvider,
        WaveConfig,
    )
    from .render import default_config_toml
    from .values import parse_listen_address, validate_namespace_hash
else:
    from ..lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".environment": ("Environment",),
        ".errors": ("ConfigError",),
        ".load": ("load_config", "load_default_config", "parse_config"),
        ".model": (
            "BudgetConfig", "Config", "LimitsConfig", "ListenAddress", "LocalConfig", "MetricsConfig", "PeerConfig",
            "QueueConfig", "RouterPeer", "RoutingConfig", "StorageProvider", "WaveConfig",
        ),
        ".render": ("default_config_toml",),
        ".values": ("parse_listen_address", "validate_namespace_hash"),
    })

__all__ = [
    "BudgetConfig",
    "Config",
    "ConfigError",
    "Environment",
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
    "default_config_toml",
    "load_config",
    "load_default_config",
    "parse_config",
    "parse_listen_address",
    "validate_namespace_hash",
]
