"""A mock transport for the asyncio glue (uvicorn's tests/protocols idea): it records what the protocol
writes, whether it closed, and whether it paused reading, and never touches a socket. The tests call
the protocol's callbacks (``connection_made``, ``data_received``, ``connection_lost``...) as the loop
would, so each one runs inside a real event loop but in a fixed order."""

from __future__ import annotations

import asyncio

from wavemq_edge.wire import NEED_DATA, Frame, FrameDecoder

__all__ = ["MockTransport", "run_pending"]


class MockTransport:
    """Just enough of ``asyncio.Transport`` for a protocol: writes, close, reading paused or not."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.peer = peer
        self.written = bytearray()
        self.closed = False
        self.reading = True
        self.write_limits: tuple[int | None, int | None] | None = None
        self._decoder = FrameDecoder(1 << 24)

    # ------------------------------------------------------------------ the Transport surface

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.write_limits = (high, low)

    def get_write_buffer_size(self) -> int:
        return 0

    # ------------------------------------------------------------------ for the tests

    def frames(self) -> list[Frame]:
        """The frames written since the last call."""
        self._decoder.receive_bytes(bytes(self.written))
        self.written.clear()
        out: list[Frame] = []
        while True:
            f = self._decoder.next_frame()
            if f is NEED_DATA:
                return out
            assert isinstance(f, Frame)
            out.append(f)


async def run_pending(rounds: int = 3) -> None:
    """Let the loop run the callbacks already scheduled (the glue batches writes with ``call_soon``):
    a future resolved by a ``call_soon`` made now completes after every callback queued before it. A
    few rounds, for callbacks that schedule another."""
    loop = asyncio.get_running_loop()
    for _ in range(rounds):
        done = loop.create_future()
        loop.call_soon(done.set_result, None)
        await done
