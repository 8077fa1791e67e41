"""A fault-injecting TCP proxy for trunk tests, on 127.0.0.1 only.

Runs its own asyncio loop in a thread. Modes, switchable at any moment from the test:

* ``pass``      forward both ways;
* ``blackhole`` keep connections open but silently drop everything (a dead link that TCP does not see);
* ``cut``       close every connection (FIN, or RST with ``rst=True``) and refuse new ones;
* ``delay``     forward after ``delay_s`` seconds.

``flap(down_s, up_s, total_s)`` alternates ``cut`` and ``pass`` in a background thread. Everything is
bounded: ``stop()`` closes the listener and all connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.delay_s = 0.0
        self.port = 0
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    @property
    def address(self) -> str:
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
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False),
                             return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool) -> None:
        while True:
            data = await reader.read(65536)
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

    def set_mode(self, mode: str, *, rst: bool = False) -> None:
        self.mode = mode
        if mode == "cut":
            def cut() -> None:
                for w in list(self._writers):
                    sock = w.get_extra_info("socket")
                    if rst and sock is not None:
                        with contextlib.suppress(OSError):
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    w.close()
                self._writers.clear()
            self._loop.call_soon_threadsafe(cut)

    def flap(self, down_s: float, up_s: float, total_s: float) -> threading.Thread:
        def run() -> None:
            end = time.monotonic() + total_s
            while time.monotonic() < end:
                self.set_mode("cut", rst=True)
                time.sleep(down_s)
                self.set_mode("pass")
                time.sleep(up_s)
            self.set_mode("pass")
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(5)
