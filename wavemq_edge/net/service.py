"""The router process: start-up, timers, flushes, signals and shutdown (uvicorn's four steps of life).

``RouterService.serve()`` runs ``startup()`` (stores recovered, router entity loaded or created,
listeners up), then the main loop until a signal sets ``should_exit``, then ``shutdown()``: stop
accepting, tell every agent the router is going away, final flush, close the stores. Signal handlers
only set an event. Every wait in shutdown is bounded.

Flushes run ``QueueStore.write_flush`` in a worker thread (the one place a blocking call leaves the
loop: the fsync), while the loop keeps accepting and delivering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .. import __version__
from ..config import Config
from ..config.units import MIB
from ..ops.durable_gate import DurableGateRouterCore
from ..ops.runtime import OpsRuntime
from ..router import RouterCore, RouterOptions
from ..router.trunk import TrunkOptions, Uplink
from ..storage import PersistOptions, PersistStore, QueueLimits, QueueStore, StorageError, StoreOptions
from ..wave import (
    PSET_WAVEMQ,
    EntitySecret,
    Proof,
    Revocation,
    VerificationError,
    Verifier,
    WaveError,
    WaveStore,
    create_entity,
    format_id,
    load_entity_secret,
    load_object,
    parse_id,
    save_entity_secret,
)
from .agent_server import AgentServer
from .trunk_net import TrunkNet

__all__ = ["RouterService", "StartupError"]

log = logging.getLogger("wavemq_edge.net.service")

#: The router entity WAVEMQ creates for itself lives 30 years (reference §7.2).
ROUTER_ENTITY_EXPIRY_S: Final = 30 * 365 * 86400
#: How often revocations recorded in the WAVE database (``wv revoke``, ``wv import``) are picked up.
REVOCATION_POLL_S: Final = 2.0
#: Longest the timer task sleeps, so a clock step or a missed wake-up costs at most this.
MAX_TIMER_SLEEP_S: Final = 1.0
#: Bound on the final flush and on closing connections at shutdown.
SHUTDOWN_TIMEOUT_S: Final = 10.0


class StartupError(Exception):
    """The router cannot start; the message says what to fix."""


@dataclass
class ServiceStats:
    started_wall: float = field(default_factory=time.time)
    flush_seconds_total: float = 0.0
    flush_seconds_last: float = 0.0
    flush_seconds_max: float = 0.0
    #: loop time the flush in flight started (the systemd watchdog declares a stalled flusher unhealthy).
    flush_started: float | None = None


def load_or_create_router_entity(path: Path) -> EntitySecret:
    """The router's own entity (``RouterEntityFile``), created on first start as WAVEMQ does."""
    if path.exists():
        try:
            return load_entity_secret(path)
        except WaveError as exc:
            raise StartupError(f"RoutingConfig.RouterEntityFile {path}: {exc}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = create_entity(time.time(), ROUTER_ENTITY_EXPIRY_S, label="wavemq-edge router")
        save_entity_secret(path, secret)
    except (OSError, WaveError) as exc:
        raise StartupError(f"cannot create the router entity at {path}: {exc}") from None
    log.info("event=router_entity_created path=%s id=%s", path, format_id(secret.id))
    return secret


class RouterService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.should_exit = asyncio.Event()
        self.stats = ServiceStats()
        self.core: RouterCore | None = None
        self.queues: QueueStore | None = None
        self.persist: PersistStore | None = None
        self.wave_store: WaveStore | None = None
        self.agent_server: AgentServer | None = None
        self.trunk: TrunkNet | None = None
        #: the address the peer (trunk) listener is bound to, when this router is designated for any namespace
        self.peer_address: str = ""
        self.router_entity: EntitySecret | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._persist_flush_task: asyncio.Task[None] | None = None
        self._known_revocations: frozenset[bytes] = frozenset()
        self.listen_addresses: list[str] = []
        #: budget watch, systemd notify/watchdog, metrics, status fields (``ops/runtime.py``).
        self.ops = OpsRuntime(config)

    # ------------------------------------------------------------------ start-up

    async def startup(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        now = loop.time()
        for p in (cfg.queue.queue_data_store, cfg.wave.database, cfg.routing.persist_data_store):
            try:
                p.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StartupError(f"cannot create data directory {p}: {exc.strerror}") from None
        self.router_entity = load_or_create_router_entity(cfg.routing.router_entity_file)
        try:
            self.wave_store = WaveStore(cfg.wave.database)
        except WaveError as exc:
            raise StartupError(str(exc)) from None
        revoked = self.wave_store.revoked_commitments()
        self._known_revocations = revoked
        verifier = Verifier(lookup=self.wave_store.get_entity, revoked=revoked,
                            default_to_unrevoked=cfg.wave.default_to_unrevoked)
        store_options = StoreOptions(
            path=str(cfg.queue.queue_data_store),
            journal_dir=(str(cfg.queue.journal_dir) if cfg.queue.journal_dir is not None
                         else cfg.environment.journal_dir),
            flush_interval_s=float(cfg.queue.flush_interval_s),
            flush_bytes=cfg.queue.flush_size_mb * MIB,
            max_queues=max(1024, cfg.limits.max_connections * 2),
        )
        self.ops.extend_startup()
        t0 = time.perf_counter()
        try:
            self.queues = QueueStore.open(store_options, now, time.time())
        except (StorageError, ValueError) as exc:
            raise StartupError(f"QueueConfig.queueDataStore {cfg.queue.queue_data_store}: {exc}") from None
        journal_dir = str(cfg.queue.journal_dir) if cfg.queue.journal_dir is not None else cfg.environment.journal_dir
        try:
            self.persist = PersistStore.open(
                PersistOptions(path=str(cfg.routing.persist_data_store), journal_dir=journal_dir,
                               flush_interval_s=float(cfg.queue.flush_interval_s),
                               flush_bytes=cfg.queue.flush_size_mb * MIB),
                now,
            )
        except (StorageError, ValueError) as exc:
            raise StartupError(f"RoutingConfig.PersistDataStore {cfg.routing.persist_data_store}: {exc}") from None
        recovery_s = time.perf_counter() - t0
        options = RouterOptions(
            subscription_limits=QueueLimits(
                max_length=cfg.queue.subscription_queue_max_length,
                max_bytes=cfg.queue.subscription_queue_max_size_mb * MIB,
                expiry_s=float(cfg.queue.queue_expiry_s),
            ),
            max_subscriptions_per_connection=cfg.limits.max_subscriptions_per_connection,
            inflight_window=cfg.limits.inflight_window,
        )
        self.core = DurableGateRouterCore(router_id=self.router_entity.id, queues=self.queues, verifier=verifier,
                               options=options, now=now, wall_offset=time.time() - now, persist=self.persist)
        self.agent_server = AgentServer(self.core, max_connections=cfg.limits.max_connections,
                                        max_frame_bytes=cfg.limits.max_frame_bytes,
                                        handshake_timeout_s=cfg.limits.handshake_timeout_s)
        addr = cfg.local.listen_addr
        try:
            server = await loop.create_server(self.agent_server.protocol_factory, addr.host, addr.port,
                                              reuse_address=True, backlog=min(1024, cfg.limits.max_connections))
        except OSError as exc:
            raise StartupError(f"LocalConfig.listenAddr {addr}: cannot listen: {exc.strerror}") from None
        self._servers.append(server)
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            self.listen_addresses.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        if cfg.local.unix_socket is not None:
            path = cfg.local.unix_socket
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            try:
                userver = await loop.create_unix_server(self.agent_server.protocol_factory, str(path))
            except OSError as exc:
                raise StartupError(f"LocalConfig.unixSocket {path}: cannot listen: {exc.strerror}") from None
            self._servers.append(userver)
            self.listen_addresses.append(f"unix:{path}")
        await self._start_trunk(verifier, now)
        self._tasks.append(asyncio.create_task(self._timer_loop(), name="wavemq-timers"))
        self._tasks.append(asyncio.create_task(self._revocation_loop(), name="wavemq-revocations"))
        st = self.queues.store_stats()
        log.info("event=started version=%s router=%s listen=%s queues=%d items=%d recovered_records=%d "
                 "recovery_s=%.3f", __version__, format_id(self.router_entity.id), ",".join(self.listen_addresses),
                 st.queues, st.items, st.recovered_records, recovery_s)
        await self.ops.start(self)  # READY=1: listeners up, stores recovered
        if self.trunk is not None:
            ops_extra, trunk = self.core.status_extra, self.trunk
            self.core.status_extra = lambda t: {**(ops_extra(t) if ops_extra is not None else {}), **trunk.status()}

    # ------------------------------------------------------------------ tiering

    def _load_route_proofs(self, verifier: Verifier) -> dict[bytes, bytes]:
        """``DesignatedNamespaceFiles``: each must grant this router ``wavemq:route`` on ``*`` of its
        namespace, now (WAVEMQ accepted route on any resource: ``wavemq-behaviour.md`` §12 row 17)."""
        assert self.router_entity is not None
        proofs: dict[bytes, bytes] = {}
        for path in self.config.routing.designated_namespace_files:
            where = f"RoutingConfig.DesignatedNamespaceFiles {path}"
            try:
                obj = load_object(path)
            except (WaveError, OSError) as exc:
                raise StartupError(f"{where}: {exc}") from None
            if not isinstance(obj, Proof):
                raise StartupError(f"{where}: expected a route proof made by `wv rtprove`, found a "
                                   f"{type(obj).__name__.lower()}")
            try:
                verifier.check(obj.raw, subject=self.router_entity.id, namespace=obj.namespace_id, pset=PSET_WAVEMQ,
                               permission="route", resource=("*",), now=time.time())
            except VerificationError as exc:
                raise StartupError(
                    f"{where}: it does not grant this router ({format_id(self.router_entity.id)}) wavemq:route on "
                    f"* of namespace {format_id(obj.namespace_id)}: {exc}. Make it with `wv rtprove --subject "
                    f"<RouterEntityFile> \"wavemq:route@<namespace>/*\"`") from None
            proofs[obj.namespace_id] = obj.raw
        return proofs

    async def _start_trunk(self, verifier: Verifier, now: float) -> None:
        cfg = self.config
        assert self.core is not None and self.agent_server is not None and self.router_entity is not None
        route_proofs = self._load_route_proofs(verifier)
        if not route_proofs and not cfg.routing.routers:
            return
        self.core.designated.update(route_proofs)
        options = TrunkOptions(keepalive_s=cfg.peer.keepalive_interval_s, dead_after_s=cfg.peer.dead_after_s,
                               max_frame_bytes=cfg.limits.max_frame_bytes)
        trunk = TrunkNet(self.core, self.agent_server, self.router_entity, verifier, options,
                         route_proofs=route_proofs, reconnect_min_s=cfg.peer.reconnect_min_s,
                         reconnect_max_s=cfg.peer.reconnect_max_s, revocations=self._revocation_objects,
                         on_revocations=self._learn_revocations)
        limits = QueueLimits(max_length=cfg.queue.trunking_queue_max_length,
                             max_bytes=cfg.queue.trunking_queue_max_size_mb * MIB,
                             expiry_s=float(cfg.queue.queue_expiry_s))
        for peer in cfg.routing.routers:
            try:
                namespace = parse_id(peer.namespace)
            except WaveError as exc:
                raise StartupError(f"RoutingConfig.Router namespace {peer.namespace}: {exc}") from None
            trunk.add_uplink(Uplink(self.core, self.router_entity, namespace, str(peer.address), limits, options,
                                    now, revocations=self._revocation_objects,
                                    on_revocations=self._learn_revocations))
        self.core.on_trunk_append = trunk.trunk_appended
        if route_proofs:
            addr = cfg.peer.listen_addr
            loop = asyncio.get_running_loop()
            try:
                server = await loop.create_server(trunk.peer_factory, addr.host, addr.port, reuse_address=True)
            except OSError as exc:
                raise StartupError(f"PeerConfig.listenAddr {addr}: cannot listen: {exc.strerror}") from None
            self._servers.append(server)
            host, port = server.sockets[0].getsockname()[:2]
            self.peer_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        trunk.start()
        self.trunk = trunk
        log.info("event=trunk_started designated=%s uplinks=%s peer_listen=%s",
                 ",".join(format_id(n) for n in route_proofs) or "-",
                 ",".join(f"{p.namespace}@{p.address}" for p in cfg.routing.routers) or "-", self.peer_address or "-")

    def _revocation_objects(self) -> list[bytes]:
        if self.wave_store is None:
            return []
        try:
            return [r.raw for r in self.wave_store.revocations()]
        except WaveError:
            return []

    def _learn_revocations(self, raws: list[bytes]) -> None:
        """Revocation objects that came over a trunk: checked (self-authenticating), recorded, applied."""
        if self.wave_store is None or self.core is None:
            return
        now = asyncio.get_running_loop().time()
        learned: set[bytes] = set()
        for raw in raws:
            try:
                rev = Revocation.from_bytes(raw)
                if self.wave_store.put_revocation(rev):
                    ended = self.core.add_revocation(rev, now)
                    log.info("event=revocation_received commitment=%s subscriptions_ended=%d",
                             rev.commitment.hex()[:16], ended)
                learned.add(rev.commitment)
            except WaveError as exc:
                log.warning("event=bad_revocation_from_peer error=%r", str(exc))
        self._known_revocations = self._known_revocations | learned

    # ------------------------------------------------------------------ timers

    def _next_deadline(self) -> float | None:
        assert self.core is not None and self.queues is not None
        persist = self.persist.next_flush_deadline() if self.persist is not None else None
        deadlines = [d for d in (self.core.next_deadline(), self.queues.next_deadline(), persist) if d is not None]
        return min(deadlines) if deadlines else None

    async def _timer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.core is not None and self.queues is not None and self.agent_server is not None
        while not self.should_exit.is_set():
            now = loop.time()
            deadline = self._next_deadline()
            sleep = MAX_TIMER_SLEEP_S if deadline is None else min(MAX_TIMER_SLEEP_S, max(0.0, deadline - now))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.should_exit.wait(), timeout=sleep)
            if self.should_exit.is_set():
                return
            now = loop.time()
            self.core.wall_offset = time.time() - now
            try:
                self.core.handle_timer(now)
            except StorageError:
                log.exception("event=timer_failed")
            self.agent_server.flush_writes()
            if self._flush_task is None and self.queues.flush_due(now):
                self._flush_task = asyncio.create_task(self._flush(), name="wavemq-flush")
            if self.persist is not None and self._persist_flush_task is None and self.persist.flush_due(now):
                self._persist_flush_task = asyncio.create_task(self._flush_persist(), name="wavemq-persist-flush")

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        queues = self.queues
        assert queues is not None
        try:
            batch = queues.prepare_flush(loop.time())
            if batch is None:
                return
            t0 = time.perf_counter()
            self.stats.flush_started = loop.time()
            outcome = await loop.run_in_executor(None, queues.write_flush, batch)
            elapsed = time.perf_counter() - t0
            self.stats.flush_seconds_max = max(self.stats.flush_seconds_max, elapsed)
            queues.complete_flush(batch, outcome, loop.time())
            self.stats.flush_seconds_last = elapsed
            self.stats.flush_seconds_total += elapsed
            if not batch.empty:
                log.debug("event=flushed items=%d bytes=%d seconds=%.4f outcome=%s", batch.item_count,
                          batch.item_bytes, elapsed, outcome.value)
        finally:
            self.stats.flush_started = None
            self._flush_task = None

    def request_flush(self) -> bool:
        """Start a flush now (the budget watch asks when memory is over budget); False if one is running."""
        if self._flush_task is not None or self.queues is None or self.should_exit.is_set():
            return False
        self._flush_task = asyncio.create_task(self._flush(), name="wavemq-flush")
        return True

    async def _flush_persist(self) -> None:
        loop = asyncio.get_running_loop()
        persist = self.persist
        assert persist is not None
        try:
            batch = persist.prepare_flush(loop.time())
            if batch is None:
                return
            outcome = await loop.run_in_executor(None, persist.write_flush, batch)
            persist.complete_flush(batch, outcome, loop.time())
        finally:
            self._persist_flush_task = None

    async def _revocation_loop(self) -> None:
        while not self.should_exit.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.should_exit.wait(), timeout=REVOCATION_POLL_S)
            if self.should_exit.is_set():
                return
            self.poll_revocations()

    def poll_revocations(self) -> int:
        """Pick up revocations added to the WAVE database since the last look."""
        if self.wave_store is None or self.core is None or self.agent_server is None:
            return 0
        try:
            current = self.wave_store.revoked_commitments()
        except WaveError as exc:
            log.warning("event=revocation_poll_failed error=%r", str(exc))
            return 0
        new = current - self._known_revocations
        self._known_revocations = current
        now = asyncio.get_running_loop().time()
        for commitment in new:
            ended = self.core.add_revocation(commitment, now)
            log.info("event=revocation_learned commitment=%s subscriptions_ended=%d", commitment.hex()[:16], ended)
        if new and self.trunk is not None:
            # revocations travel: every connected site and designated router learns them now
            self.trunk.broadcast_revocations([r.raw for r in self.wave_store.revocations() if r.commitment in new])
        if new:
            self.agent_server.flush_writes()
        return len(new)

    # ------------------------------------------------------------------ run / shutdown

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.should_exit.set)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        self.install_signal_handlers()
        try:
            await self.startup()
            if ready is not None:
                ready.set()
            await self.should_exit.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        log.info("event=shutting_down")
        self.ops.stopping()
        self.should_exit.set()
        for server in self._servers:
            server.close()
        if self.trunk is not None:
            await self.trunk.stop()
        if self.agent_server is not None:
            self.agent_server.close_all("router shutting down")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=SHUTDOWN_TIMEOUT_S)
        for flush in (self._flush_task, self._persist_flush_task):
            if flush is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(flush), timeout=SHUTDOWN_TIMEOUT_S)
        for server in self._servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=1.0)
        if self.queues is not None:
            try:
                outcome = self.queues.close(asyncio.get_running_loop().time())
                log.info("event=final_flush outcome=%s", outcome.value)
            except StorageError as exc:
                log.error("event=final_flush_failed error=%r", str(exc))
            self.queues = None
        if self.persist is not None:
            try:
                self.persist.close(asyncio.get_running_loop().time())
            except StorageError as exc:
                log.error("event=persist_final_flush_failed error=%r", str(exc))
            self.persist = None
        if self.wave_store is not None:
            self.wave_store.close()
            self.wave_store = None
        if self.config.local.unix_socket is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.config.local.unix_socket)
        await self.ops.close()
        log.info("event=stopped")
