"""The daemon shell: start-up, serve, ordered bounded shutdown (uvicorn's ``server.py``).

``Server.serve()`` runs ``startup()`` (stores recovered, router entity loaded or created, listeners up,
ops told it is ready), then waits until a signal sets ``should_exit``, then ``shutdown()``: stop
accepting, close the trunks, tell every agent the router is going away, let flushes in flight finish,
final flush, close the stores. Signal handlers only set flags: the first SIGTERM/SIGINT asks for a
graceful shutdown, a second SIGINT forces the process out at once. Every wait in shutdown is bounded.

The server is also what ops reads (``ServerState``) and what the budget watch may ask things of
(``ServerControls``); the core, the stores and the glue are never handed to ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Final

from .. import __version__
from ..config import Config
from ..net.agent_server import AgentServer
from ..net.metrics_server import MetricsServer
from ..net.mqtt_server import MqttServer
from ..net.trunk_net import TrunkNet
from ..net.writes import WriteScheduler
from ..ops.logging import RateLimitedLog
from ..ops.runtime import OpsRuntime
from ..ops.state import FlushTimes, TrunkSummary
from ..router import CoreStatus, RouterCore
from ..router.trunk import Uplink, UplinkSet
from ..storage import DropReason, PersistStore, QueueStats, QueueStore, StorageError
from ..storage.journal_dir import prepare_journal_dir
from ..storage.lmdb_env import ensure_private_dir
from ..storage.store_health import SetAside
from ..wave import EntitySecret, Verifier, WaveError, WaveStore, format_id, parse_id
from . import derive
from .flusher import Flusher
from .intake import IntakeGate
from .mqtt_start import start_mqtt
from .revocations import RevocationWatch
from .startup import StartupError, listen, listen_unix, load_or_create_router_entity, load_route_proofs, open_store
from .verify_threads import ThreadedVerifier, worker_threads

__all__ = ["Server", "StartupError"]

log = logging.getLogger("wavemq_edge.server")

#: Longest the timer task sleeps, so a clock step or a missed wake-up costs at most this.
MAX_TIMER_SLEEP_S: Final = 1.0
#: Bound on the final flush and on closing connections at shutdown.
SHUTDOWN_TIMEOUT_S: Final = 10.0
#: Exit status of a forced exit (a second SIGINT during shutdown), as a shell reports SIGINT.
FORCED_EXIT_STATUS: Final = 130


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self._unix_socket_bound = False
        self.core: RouterCore | None = None
        self.queues: QueueStore | None = None
        self.persist: PersistStore | None = None
        self.wave_store: WaveStore | None = None
        self.agent_server: AgentServer | None = None
        self.mqtt_server: MqttServer | None = None
        self.trunk_net: TrunkNet | None = None
        self.uplinks = UplinkSet()
        self.flusher: Flusher | None = None
        self.intake: IntakeGate | None = None
        #: checks publish signatures beside the event loop (``LimitsConfig.verifyThreads``)
        self.verify_threads: ThreadedVerifier | None = None
        self.revocations: RevocationWatch | None = None
        self.metrics_server: MetricsServer | None = None
        self.router_entity: EntitySecret | None = None
        self.listen_addresses: list[str] = []
        #: the address the peer (trunk) listener is bound to, when this router is designated for any namespace
        self.peer_address: str = ""
        self._servers: list[asyncio.AbstractServer] = []
        #: stores LMDB reported damaged at start-up, renamed and replaced by fresh ones (status shows them)
        self.stores_set_aside: list[SetAside] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.ops = OpsRuntime(
            derive.budget_settings(config),
            lambda disk_free, available, cgroup: derive.fit_inputs(config, disk_free=disk_free,
                                                                  available_memory=available,
                                                                  cgroup_memory_max=cgroup),
            env=derive.ops_environment(config))

    # ------------------------------------------------------------------ ServerState (read by ops)

    @property
    def flush_times(self) -> FlushTimes:
        return self.flusher.times if self.flusher is not None else FlushTimes()

    def core_status(self, now: float) -> CoreStatus:
        assert self.core is not None
        return self.core.status(now)

    def queue_stats(self) -> Sequence[QueueStats]:
        queues = self.queues
        return [] if queues is None else [queues.stats(q) for q in queues.queue_ids()]

    def agent_connections(self) -> int:
        return 0 if self.agent_server is None else len(self.agent_server.connections)

    def agent_admission(self) -> Mapping[str, Mapping[str, int]]:
        return {} if self.agent_server is None else self.agent_server.admission()

    def trunk(self) -> TrunkSummary | None:
        if self.trunk_net is None:
            return None
        return TrunkSummary(uplinks=tuple(up.status() for up in self.uplinks),
                            sites_connected=self.trunk_net.sites_connected(),
                            designated_for=tuple(self.trunk_net.designated_for()))

    # ------------------------------------------------------------------ ServerControls (asked by ops)

    def request_flush(self) -> bool:
        if self.flusher is None or self.should_exit.is_set():
            return False
        return self.flusher.request()

    def shed_oldest(self, queue_id: str, max_bytes: int) -> int:
        if self.queues is None or not self.queues.has_queue(queue_id):
            return 0
        return self.queues.shed_oldest(queue_id, max_bytes=max_bytes, reason=DropReason.BUDGET)

    def refuse_new_durable(self, reason: str | None) -> None:
        if self.core is not None:
            self.core.refuse_new_durable(reason)

    def hold_publishers(self, held: bool) -> None:
        if self.intake is not None:
            self.intake.hold_for_memory(held)

    # ------------------------------------------------------------------ start-up

    def _open_stores(self, now: float) -> tuple[QueueStore, PersistStore]:
        """Both durable stores; one LMDB reports damaged is set aside and a fresh one used (startup.py)."""
        cfg = self.config
        self.ops.extend_startup()
        qopts, popts = derive.store_options(cfg), derive.persist_options(cfg)
        queues = open_store("queue", "QueueConfig.queueDataStore", qopts.path,
                            lambda: QueueStore.open(qopts, now, time.time()), self.stores_set_aside)
        try:
            persist = open_store("persist", "RoutingConfig.PersistDataStore", popts.path,
                                 lambda: PersistStore.open(popts, now), self.stores_set_aside)
        except StartupError:
            queues.close(now)
            raise
        return queues, persist

    def _make_dirs(self) -> None:
        cfg = self.config
        for p in (cfg.queue.queue_data_store, cfg.wave.database, cfg.routing.persist_data_store):
            try:
                ensure_private_dir(str(p))  # 0700 whatever the umask; a warning if others can enter it
            except OSError as exc:
                raise StartupError(f"cannot create data directory {p}: {exc.strerror}") from None

    def _uplink_namespaces(self) -> list[tuple[bytes, str]]:
        out = []
        for peer in self.config.routing.routers:
            try:
                out.append((parse_id(peer.namespace), str(peer.address)))
            except WaveError as exc:
                raise StartupError(f"RoutingConfig.Router namespace {peer.namespace}: {exc}") from None
        return out

    async def startup(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        now, wall = loop.time(), time.time()
        self._make_dirs()
        me = self.router_entity = load_or_create_router_entity(cfg.routing.router_entity_file)
        try:
            self.wave_store = WaveStore(cfg.wave.database)
        except WaveError as exc:
            raise StartupError(str(exc)) from None
        revoked = self.wave_store.revoked_commitments()
        verifier = Verifier(lookup=self.wave_store.get_entity, revoked=revoked,
                            default_to_unrevoked=cfg.wave.default_to_unrevoked)
        route_proofs = load_route_proofs(cfg, me, verifier, wall)
        uplinks = self._uplink_namespaces()
        journal_dir = derive.journal_dir(cfg)
        if journal_dir:
            try:
                prepare_journal_dir(journal_dir)  # a trust boundary: ours, 0700, not a symlink
            except StorageError as exc:
                raise StartupError(f"QueueConfig.journalDir: {exc}") from None  # exc names the path
        t0 = time.perf_counter()
        self.queues, self.persist = self._open_stores(now)
        recovery_s = time.perf_counter() - t0
        trunk = derive.trunk_settings(cfg)
        self.core = RouterCore(router_id=me.id, queues=self.queues, verifier=verifier,
                               options=derive.router_options(cfg), now=now, wall=wall, persist=self.persist,
                               designated=frozenset(route_proofs),
                               trunked={ns: trunk.uplink_limits for ns, _addr in uplinks}, hooks=self.uplinks)
        threads = worker_threads(cfg.limits.verify_threads)
        if threads:
            self.verify_threads = ThreadedVerifier(threads)
            self.core.verify_many = self.verify_threads.verify_many
        self.flusher = Flusher(self.queues, self.persist)
        self.revocations = RevocationWatch(self.wave_store, self.core, revoked)
        writes = WriteScheduler(self.core)
        agents = derive.agent_server_options(cfg)
        self.agent_server = AgentServer(self.core, writes, slots=agents.slots,
                                        max_frame_bytes=agents.max_frame_bytes,
                                        handshake_timeout_s=agents.handshake_timeout_s,
                                        frame_stall_timeout_s=agents.frame_stall_timeout_s,
                                        status_source=self.ops.status_reply,
                                        refusal_log=RateLimitedLog(logging.getLogger("wavemq_edge.net.agent")))
        self.intake = IntakeGate(self.agent_server, self.queues, self.flusher)
        writes.after_pass = self.intake.after_pass
        await self._listen_agents(agents.listen_backlog)
        self.mqtt_server = await start_mqtt(cfg, self.core, writes, self._servers)
        if route_proofs or uplinks:
            await self._start_trunk(writes, verifier, route_proofs, uplinks, trunk, wall)
        self._tasks.append(asyncio.create_task(self._timer_loop(), name="wavemq-timers"))
        self._tasks.append(asyncio.create_task(self.revocations.run(self.should_exit), name="wavemq-revocations"))
        st = self.queues.store_stats()
        log.info("event=started version=%s router=%s listen=%s queues=%d items=%d recovered_records=%d "
                 "recovery_s=%.3f stores_set_aside=%d", __version__, format_id(me.id), ",".join(self.listen_addresses),
                 st.queues, st.items, st.recovered_records, recovery_s, len(self.stores_set_aside))
        await self.ops.start(self, self, await self._start_metrics())  # READY=1: listeners up, stores recovered

    async def _listen_agents(self, backlog: int) -> None:
        assert self.agent_server is not None
        cfg = self.config
        addr = cfg.local.listen_addr
        server, names = await listen(self.agent_server.protocol_factory, addr.host, addr.port,
                                     "LocalConfig.listenAddr", backlog=backlog)
        self._servers.append(server)
        self.listen_addresses += names
        if cfg.local.unix_socket is not None:
            self._servers.append(await listen_unix(self.agent_server.protocol_factory, cfg.local.unix_socket))
            self._unix_socket_bound = True
            self.listen_addresses.append(f"unix:{cfg.local.unix_socket}")

    async def _start_trunk(self, writes: WriteScheduler, verifier: Verifier, route_proofs: dict[bytes, bytes],
                           uplinks: list[tuple[bytes, str]], trunk: derive.TrunkSettings, wall: float) -> None:
        assert self.core is not None and self.router_entity is not None and self.revocations is not None
        revs = self.revocations
        for namespace, address in uplinks:
            self.uplinks.add(Uplink(self.core, self.router_entity, namespace, address, trunk.options, wall,
                                    revocations=revs.objects, on_revocations=revs.learn))
        net = TrunkNet(self.core, writes, self.uplinks, self.router_entity, verifier, trunk.options,
                       route_proofs=route_proofs, reconnect_min_s=trunk.reconnect_min_s,
                       reconnect_max_s=trunk.reconnect_max_s, revocations=revs.objects, on_revocations=revs.learn)
        revs.trunk = net
        if route_proofs:
            addr = self.config.peer.listen_addr
            server, names = await listen(net.peer_factory, addr.host, addr.port, "PeerConfig.listenAddr")
            self._servers.append(server)
            self.peer_address = names[0]
        net.start()
        self.trunk_net = net
        log.info("event=trunk_started designated=%s uplinks=%s peer_listen=%s",
                 ",".join(format_id(n) for n in route_proofs) or "-",
                 ",".join(f"{format_id(n)}@{a}" for n, a in uplinks) or "-", self.peer_address or "-")

    async def _start_metrics(self) -> str:
        mc = self.config.metrics
        if not mc.enabled:
            return ""
        self.metrics_server = MetricsServer(self.ops.render_metrics)
        try:
            return await self.metrics_server.start(mc.listen_addr.host, mc.listen_addr.port)
        except OSError as exc:
            # Metrics are an aid, not the service: a port clash must not keep the router down.
            log.warning("event=metrics_listen_failed addr=%s error=%r", mc.listen_addr, exc.strerror)
            self.metrics_server = None
            return ""

    # ------------------------------------------------------------------ timers

    def _next_deadline(self, now: float, wall: float) -> float | None:
        assert self.core is not None and self.flusher is not None
        deadlines = [d for d in (self.core.next_deadline(now, wall), self.flusher.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    async def _timer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.core is not None and self.agent_server is not None and self.flusher is not None
        while not self.should_exit.is_set():
            deadline = self._next_deadline(loop.time(), time.time())
            now = loop.time()
            sleep = MAX_TIMER_SLEEP_S if deadline is None else min(MAX_TIMER_SLEEP_S, max(0.0, deadline - now))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.should_exit.wait(), timeout=sleep)
            if self.should_exit.is_set():
                return
            now = loop.time()
            try:
                self.core.handle_timer(now, time.time())
            except StorageError:
                log.exception("event=timer_failed")
            self.agent_server.writes.write_pending()
            self.flusher.due(now)

    # ------------------------------------------------------------------ run / shutdown

    def handle_exit(self, sig: int) -> None:
        """Signal handler: only sets flags (a second SIGINT while shutting down forces the exit)."""
        if self.should_exit.is_set() and sig == signal.SIGINT:
            self.force_exit = True
            log.warning("event=forced_exit reason=%r", "second SIGINT during shutdown")
            os._exit(FORCED_EXIT_STATUS)
        self.should_exit.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.handle_exit, sig)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        self.install_signal_handlers()
        started = False
        try:
            await self.startup()
            started = True
            if ready is not None:
                ready.set()
            await self.should_exit.wait()
        finally:
            # After a failed start-up the caller prints the one line that matters: undo quietly.
            await self.shutdown(quiet=not started)

    async def _stop_network(self) -> None:
        if self.intake is not None:
            self.intake.close()
        for server in self._servers:
            server.close()
        if self.trunk_net is not None:
            await self.trunk_net.stop()
        if self.agent_server is not None:
            self.agent_server.close_all("router shutting down")
        if self.mqtt_server is not None:
            self.mqtt_server.close_all("router shutting down")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=SHUTDOWN_TIMEOUT_S)
        for server in self._servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=1.0)
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None

    def _close_stores(self, now: float, level: int = logging.INFO) -> None:
        if self.queues is not None:
            try:
                outcome = self.queues.close(now)
                log.log(level, "event=final_flush outcome=%s", outcome.value)
            except StorageError as exc:
                log.error("event=final_flush_failed error=%r", str(exc))
            self.queues = None
        if self.persist is not None:
            try:
                self.persist.close(now)
            except StorageError as exc:
                log.error("event=persist_final_flush_failed error=%r", str(exc))
            self.persist = None
        if self.wave_store is not None:
            self.wave_store.close()
            self.wave_store = None

    async def shutdown(self, quiet: bool = False) -> None:
        """Stop accepting, drain, final flush, close the stores: in this order, each step bounded.
        ``quiet``: after a failed start-up, the routine lines go to DEBUG only."""
        level = logging.DEBUG if quiet else logging.INFO
        log.log(level, "event=shutting_down")
        self.ops.stopping()
        self.should_exit.set()
        await self._stop_network()
        if self.flusher is not None:
            await self.flusher.wait_idle(SHUTDOWN_TIMEOUT_S)
        self._close_stores(asyncio.get_running_loop().time(), level)
        if self.verify_threads is not None:
            self.verify_threads.close()
            self.verify_threads = None
        if self.config.local.unix_socket is not None and self._unix_socket_bound:
            # only the socket this router made: a start-up that failed (a second router on the same
            # config) must not remove the running router's
            with contextlib.suppress(OSError):
                os.unlink(self.config.local.unix_socket)
        await self.ops.close()
        log.log(level, "event=stopped")
