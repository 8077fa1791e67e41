"""A fault-injecting TCP proxy on 127.0.0.1: the tier bench's uplink gate and the tiering tests' faults.

One implementation for both users: the tier bench starts it in ``cut`` (the site's uplink is down
while a backlog queues) and switches it to ``pass``; the tests in ``tests/tier`` cut, blackhole, delay
and flap the link between a site and its designated router.

It runs its own asyncio loop in a daemon thread, so a synchronous caller (a bench orchestrator, a
pytest test) can switch modes at any moment. Modes:

* ``pass``      forward both ways;
* ``blackhole`` keep connections open but silently drop everything (a dead link that TCP does not see);
* ``cut``       close every connection (FIN, or RST with ``rst=True``) and refuse new ones;
* ``delay``     forward each chunk after ``delay_s`` seconds.

:meth:`FaultProxy.flap` alternates ``cut`` and ``pass`` in a background thread. Everything is bounded:
at most :data:`MAX_CONNECTIONS` forwarded connections at once (more are refused and counted in
``refused``), a connect timeout to the target, a read size per chunk, start and stop timeouts; ``stop()``
closes the listener and every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from typing import Final, Literal, get_args

__all__ = ["CONNECT_TIMEOUT_S", "MAX_CONNECTIONS", "READ_CHUNK_BYTES", "FaultProxy", "ProxyMode"]

ProxyMode = Literal["pass", "blackhole", "cut", "delay"]
_MODES: Final[frozenset[str]] = frozenset(get_args(ProxyMode))

#: Bytes read from one side before forwarding them: the asyncio stream default limit, so one read
#: never buffers more than the transport already holds.
READ_CHUNK_BYTES: Final = 65536
#: Seconds to reach the target before the inbound connection is closed (the target is on loopback:
#: a longer wait means it is gone, e.g. the DR at the end of a bench run).
CONNECT_TIMEOUT_S: Final = 5.0
#: Forwarded connections at once; a trunk test or the tier bench uses one or two. The bound keeps a
#: misbehaving dialer (a reconnect loop without backoff) from exhausting file descriptors.
MAX_CONNECTIONS: Final = 64
#: Seconds to wait for the proxy's thread to listen, and for it to end in ``stop()``.
START_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 5.0


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``, with faults switchable at any time.

    ``mode`` is the initial mode (``cut`` starts with the link down). Counters: ``connections`` (forwarded
    so far), ``refused`` (turned away at :data:`MAX_CONNECTIONS`), ``bytes_up`` and ``bytes_down``
    (forwarded towards and from the target).
    """

    def __init__(self, target_host: str, target_port: int, *, mode: ProxyMode = "pass") -> None:
        _check_mode(mode)
        self.target = (target_host, target_port)
        self.mode: ProxyMode = mode
        self.delay_s = 0.0
        self.port = 0
        self.connections = 0
        self.refused = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._live = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("proxy did not start")

    @property
    def address(self) -> str:
        """``host:port`` to dial instead of the target."""
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.close()
            return
        if self._live >= MAX_CONNECTIONS:
            self.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        self.connections += 1
        self._live += 1
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False),
                                 return_exceptions=True)
        finally:
            self._live -= 1
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool) -> None:
        while True:
            data = await reader.read(READ_CHUNK_BYTES)
            if not data:
                writer.close()
                return
            if self.mode == "blackhole":
                continue
            if self.mode == "delay" and self.delay_s:
                await asyncio.sleep(self.delay_s)
            if up:
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)
            writer.write(data)
            await writer.drain()

    def set_mode(self, mode: ProxyMode, *, rst: bool = False) -> None:
        """Switch to ``mode``; ``cut`` also closes every open connection (with RST when ``rst``)."""
        _check_mode(mode)
        self.mode = mode
        if mode == "cut":
            self._loop.call_soon_threadsafe(self._cut, rst)

    def _cut(self, rst: bool) -> None:
        for w in list(self._writers):
            sock = w.get_extra_info("socket")
            if rst and sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.close()
        self._writers.clear()

    def flap(self, down_s: float, up_s: float, total_s: float) -> threading.Thread:
        """Alternate ``cut`` (RST) for ``down_s`` and ``pass`` for ``up_s`` during ``total_s``, then ``pass``."""

        def run() -> None:
            end = time.monotonic() + total_s
            while time.monotonic() < end:
                self.set_mode("cut", rst=True)
                time.sleep(down_s)
                self.set_mode("pass")
                time.sleep(up_s)
            self.set_mode("pass")

        t = threading.Thread(target=run, name="fault-proxy-flap", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        """Close the listener and every connection, and end the proxy's thread (bounded wait)."""

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        if self._loop.is_closed() or not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(STOP_TIMEOUT_S)


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"unknown proxy mode {mode!r}; expected one of {sorted(_MODES)}")
