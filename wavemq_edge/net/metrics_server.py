"""A minimal HTTP/1.0 endpoint for Prometheus scrapes (``MetricsConfig.listenAddr``).

Only ``GET /metrics`` (and ``/``) answer; the request head is bounded in size and time and the
connection closes after one reply, so a stuck or hostile client costs one socket for at most
``REQUEST_TIMEOUT_S``. It is meant for a loopback address (the default ``127.0.0.1:6060``): the figures
name queues and directories and carry no authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from typing import Final

from ..ops.metrics import CONTENT_TYPE

__all__ = ["MetricsServer", "is_loopback"]

log = logging.getLogger("wavemq_edge.net.metrics")

#: A scrape request head is ~200 bytes; 8 KiB is more than any scraper sends.
MAX_REQUEST_BYTES: Final = 8192
REQUEST_TIMEOUT_S: Final = 5.0
#: Scrapers are one or two; more concurrent connections are refused at accept.
MAX_CONNECTIONS: Final = 8


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only the loopback interface (``127.0.0.0/8``, ``::1``, ``localhost``); an
    empty host, ``0.0.0.0``, ``::`` or any other name or address is not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class MetricsServer:
    def __init__(self, render: Callable[[], str]) -> None:
        self._render = render
        self._server: asyncio.AbstractServer | None = None
        self._active = 0
        self.address = ""
        self.scrapes = 0

    async def start(self, host: str, port: int) -> str:
        if not is_loopback(host):
            log.warning("event=metrics_not_loopback addr=%s (the metrics name queues and data directories and "
                        "have no authentication: bind MetricsConfig.listenAddr to 127.0.0.1, or firewall it)",
                        f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True, backlog=16)
        sock = self._server.sockets[0]
        h, p = sock.getsockname()[:2]
        self.address = f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
        return self.address

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._active >= MAX_CONNECTIONS:
            writer.close()
            return
        self._active += 1
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                return
            if len(head) > MAX_REQUEST_BYTES:
                return
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) < 2:
                status, body, ctype = "400 Bad Request", b"bad request\n", "text/plain"
            elif parts[0] not in (b"GET", b"HEAD"):
                status, body, ctype = "405 Method Not Allowed", b"only GET\n", "text/plain"
            elif parts[1].split(b"?")[0] not in (b"/metrics", b"/"):
                status, body, ctype = "404 Not Found", b"try /metrics\n", "text/plain"
            else:
                try:
                    text = self._render()
                except Exception:  # a bug in a collector must not kill the router
                    log.exception("event=metrics_render_failed")
                    status, body, ctype = "500 Internal Server Error", b"error\n", "text/plain"
                else:
                    self.scrapes += 1
                    status, body, ctype = "200 OK", text.encode("utf-8"), CONTENT_TYPE
            header = (f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                      "Connection: close\r\n\r\n").encode("ascii")
            writer.write(header if parts and parts[0] == b"HEAD" else header + body)
            with contextlib.suppress(asyncio.TimeoutError, OSError):
                await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
        finally:
            self._active -= 1
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
