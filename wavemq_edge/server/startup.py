"""Start-up steps of the daemon that are not the serve loop: the router's own entity, the designated
namespaces' route proofs, the listeners. Each failure is a ``StartupError`` naming the configuration key
and what to do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from ..config import Config
from ..storage import StorageError
from ..storage.lmdb_env import ensure_private_dir, is_damage
from ..storage.store_health import SetAside, check_isolated, set_aside
from ..wave import (
    PSET_WAVEMQ,
    EntitySecret,
    Proof,
    VerificationError,
    Verifier,
    WaveError,
    create_entity,
    format_id,
    load_entity_secret,
    load_object,
    save_entity_secret,
)

__all__ = ["StartupError", "listen", "load_or_create_router_entity", "load_route_proofs", "open_store"]

log = logging.getLogger("wavemq_edge.server")

#: The router entity WAVEMQ creates for itself lives 30 years (reference §7.2).
ROUTER_ENTITY_EXPIRY_S: Final = 30 * 365 * 86400


T = TypeVar("T")


class StartupError(Exception):
    """The router cannot start; the message says what to fix."""


def _set_aside(store: str, key: str, path: str, reason: str) -> SetAside:
    try:
        return set_aside(path, store, reason)
    except OSError as exc:
        raise StartupError(f"{key} {path}: damaged ({reason}) and cannot be set aside: {exc.strerror or exc}") from None


def open_store(store: str, key: str, path: str, opener: Callable[[], T], set_asides: list[SetAside]) -> T:
    """Open one durable store (``opener``); a store that LMDB reports damaged is set aside (renamed,
    kept) and a fresh one opened, so the router starts. The walk runs in a forked child first because
    LMDB aborts the process on some damage rather than returning an error. Any other failure (a
    wrong path, a lock held by another router, permissions, a read-only filesystem) stops the start-up
    with one line naming ``key`` and ``path``."""
    try:
        health = check_isolated(path)
    except OSError as exc:
        raise StartupError(f"{key} {path}: cannot check the store: {exc}") from None
    if health.state == "corrupt":
        set_asides.append(_set_aside(store, key, path, health.error))
    for attempt in range(2):
        try:
            return opener()
        except (StorageError, ValueError, OSError) as exc:
            if attempt or not is_damage(exc):
                raise StartupError(f"{key} {path}: {exc}") from None
            set_asides.append(_set_aside(store, key, path, str(exc)))
    raise AssertionError("unreachable")  # pragma: no cover


def load_or_create_router_entity(path: Path) -> EntitySecret:
    """The router's own entity (``RouterEntityFile``), created on first start as WAVEMQ does."""
    if path.exists():
        try:
            return load_entity_secret(path)
        except WaveError as exc:
            raise StartupError(f"RoutingConfig.RouterEntityFile {path}: {exc}") from None
    try:
        ensure_private_dir(str(path.parent), warn=False)
        secret = create_entity(time.time(), ROUTER_ENTITY_EXPIRY_S, label="wavemq-edge router")
        save_entity_secret(path, secret)
    except (OSError, WaveError) as exc:
        raise StartupError(f"cannot create the router entity at {path}: {exc}") from None
    log.info("event=router_entity_created path=%s id=%s", path, format_id(secret.id))
    return secret


def load_route_proofs(config: Config, router: EntitySecret, verifier: Verifier, wall: float) -> dict[bytes, bytes]:
    """``DesignatedNamespaceFiles``: each must grant this router ``wavemq:route`` on ``*`` of its
    namespace, now (WAVEMQ accepted route on any resource: ``wavemq-behaviour.md`` §12 row 17)."""
    proofs: dict[bytes, bytes] = {}
    for path in config.routing.designated_namespace_files:
        where = f"RoutingConfig.DesignatedNamespaceFiles {path}"
        try:
            obj = load_object(path)
        except (WaveError, OSError) as exc:
            raise StartupError(f"{where}: {exc}") from None
        if not isinstance(obj, Proof):
            raise StartupError(f"{where}: expected a route proof made by `wv rtprove`, found a "
                               f"{type(obj).__name__.lower()}")
        try:
            verifier.check(obj.raw, subject=router.id, namespace=obj.namespace_id, pset=PSET_WAVEMQ,
                           permission="route", resource=("*",), now=wall)
        except VerificationError as exc:
            raise StartupError(
                f"{where}: it does not grant this router ({format_id(router.id)}) wavemq:route on "
                f"* of namespace {format_id(obj.namespace_id)}: {exc}. Make it with `wv rtprove --subject "
                f"<RouterEntityFile> \"wavemq:route@<namespace>/*\"`") from None
        proofs[obj.namespace_id] = obj.raw
    return proofs


def _printable(sockname: object) -> str:
    if isinstance(sockname, tuple):
        host, port = sockname[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(sockname)


async def listen(factory: Callable[[], asyncio.Protocol], host: str, port: int, key: str, *,
                 backlog: int = 100) -> tuple[asyncio.AbstractServer, list[str]]:
    """A TCP listener, and the addresses it is bound to; ``key`` names the setting in errors."""
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(factory, host, port, reuse_address=True, backlog=backlog)
    except OSError as exc:
        raise StartupError(f"{key} {host}:{port}: cannot listen: {exc.strerror}") from None
    return server, [_printable(sock.getsockname()) for sock in server.sockets]


def _socket_in_use(path: Path) -> bool:
    """True when something accepts connections on the Unix socket ``path`` (a live router: never
    take its socket away); a stale file left by a killed router refuses the connection."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


async def listen_unix(factory: Callable[[], asyncio.Protocol], path: Path) -> asyncio.AbstractServer:
    if _socket_in_use(path):
        raise StartupError(f"LocalConfig.unixSocket {path}: cannot listen: in use by a running process")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    try:
        return await asyncio.get_running_loop().create_unix_server(factory, str(path))
    except OSError as exc:
        raise StartupError(f"LocalConfig.unixSocket {path}: cannot listen: {exc.strerror}") from None
