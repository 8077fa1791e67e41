"""The intake gate: publishers are held at the queue store's RAM bound and let go once a flush moved the
payloads to disk; the budget watch's memory reason holds them too, and either reason keeps them held."""

from __future__ import annotations

import asyncio
from typing import cast

from waiting import await_until

from wavemq_edge.net.agent_server import AgentServer
from wavemq_edge.server.flusher import Flusher
from wavemq_edge.server.intake import IntakeGate
from wavemq_edge.storage import MemoryBackend, QueueKind, QueueLimits, QueueStore, StoreOptions


class FakeAgents:
    """Stands in for ``AgentServer.hold_publishers``: records every decision."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def hold_publishers(self, held: bool) -> None:
        self.calls.append(held)


def test_held_at_the_store_ram_bound_until_a_flush_and_by_memory_pressure() -> None:
    async def main() -> None:
        now = asyncio.get_running_loop().time()
        store = QueueStore(MemoryBackend(), StoreOptions(path="(memory)", journal_dir="", flush_interval_s=30.0,
                                                         flush_bytes=10_000), now, 1_700_000_000.0)
        store.create_queue("q", QueueKind.SUBSCRIPTION, QueueLimits(1_000_000, 1 << 30), now)
        agents = FakeAgents()
        gate = IntakeGate(cast(AgentServer, agents), store, Flusher(store, None))
        for _ in range(40):  # 40 x (10 + 256) bytes of RAM: over flush_bytes, under the bound
            store.append("q", b"x" * 10, now)
        gate.after_pass()
        assert agents.calls == [] and not gate.held  # a flush started, nobody held
        for _ in range(80):
            store.append("q", b"y" * 10, now)
        gate.after_pass()
        assert agents.calls == [True] and gate.reasons == {"store"}
        await await_until(lambda: agents.calls == [True, False], 10, "publishers let go after the flushes")
        assert not store.ram_full() and gate.holds == 1

        gate.hold_for_memory(True)
        for _ in range(80):
            store.append("q", b"z" * 10, asyncio.get_running_loop().time())
        gate.after_pass()  # the store's reason joins the memory one: still one hold
        assert agents.calls == [True, False, True] and gate.reasons == {"memory", "store"}
        await await_until(lambda: gate.reasons == {"memory"}, 10, "the store's reason to end")
        assert agents.calls == [True, False, True]  # memory still holds them
        gate.hold_for_memory(False)
        assert agents.calls == [True, False, True, False] and not gate.held
        gate.close()

    asyncio.run(asyncio.wait_for(main(), 30))
