"""Stateful property test: the queue store against a plain in-memory model.

Random sequences of create/append/peek/ack/shed/touch/remove/expire, flushes split into prepare and
complete with operations in between (as the asyncio router runs them), injected storage-full commits,
process crashes (journal kept) and power cuts (journal lost) are applied to both. After every step
the store's items, bounds and drop counters must equal the model's exactly. ``MemoryBackend`` is the
committed state that survives a "crash"; the journal is real, on tmpfs.

Model of durability: a crash (journal kept) loses nothing; a power cut returns to the model snapshot
taken at the ``prepare_flush`` of the last flush that completed successfully.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wavemq_edge.storage import (
    DropReason,
    FlushOutcome,
    MemoryBackend,
    QueueKind,
    QueueLimits,
    QueueStore,
    StoreOptions,
)
from wavemq_edge.storage.backend import FlushBatch

WALL0 = 1_700_000_000
QUEUE_IDS = ["s1", "s2", "t1"]


@dataclass
class MQueue:
    kind: QueueKind
    limits: QueueLimits
    head: int = 1
    items: list[tuple[int, bytes, int]] = field(default_factory=list)  # seq, payload, enqueue time
    tail: int = 1
    drops: dict[str, int] = field(default_factory=lambda: {r.label: 0 for r in DropReason})
    last_active: int = 0

    @property
    def bytes(self) -> int:
        return sum(len(i[1]) for i in self.items)

    def drop_oldest(self, n: int, reason: str) -> None:
        n = min(n, len(self.items))
        if n:
            del self.items[:n]
            self.drops[reason] += n


class StoreMachine(RuleBasedStateMachine):
    #: ``onDiskFull = "drop-oldest"``: a full store sheds; the subclass below keeps everything ("refuse").
    SHED_WHEN_FULL = True

    def __init__(self) -> None:
        super().__init__()
        self.journal_dir = tempfile.mkdtemp(prefix="wmq-model-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.backend = MemoryBackend()
        self.opts = StoreOptions(
            path="(memory)", journal_dir=self.journal_dir, touch_persist_granularity_s=0.0, max_queues=64,
            shed_when_full=self.SHED_WHEN_FULL,
        )
        self.now = 0
        self.store = QueueStore(self.backend, self.opts, float(self.now), float(WALL0 + self.now))
        self.model: dict[str, MQueue] = {}
        self.durable: dict[str, MQueue] = {}
        self.batch: FlushBatch | None = None
        self.batch_snapshot: dict[str, MQueue] = {}
        self.written = False

    def teardown(self) -> None:
        shutil.rmtree(self.journal_dir, ignore_errors=True)

    # ----------------------------------------------------------------- helpers

    def _reopen(self) -> None:
        self.store = QueueStore(self.backend, self.opts, float(self.now), float(WALL0 + self.now))
        self.batch = None

    def _open_ids(self) -> list[str]:
        return sorted(self.model)

    # ----------------------------------------------------------------- rules

    @rule(
        qid=st.sampled_from(QUEUE_IDS),
        max_length=st.integers(1, 6),
        max_bytes=st.integers(1, 40),
        expiry=st.sampled_from([0, 15, 40]),
    )
    def create(self, qid: str, max_length: int, max_bytes: int, expiry: int) -> None:
        kind = QueueKind.TRUNK if qid.startswith("t") else QueueKind.SUBSCRIPTION
        limits = QueueLimits(max_length, max_bytes, float(expiry))
        if qid in self.model:
            # re-creating an existing queue with other limits replaces them (tested on its own in
            # test_storage_queue_api); the model keeps one set of limits per queue
            limits = self.model[qid].limits
        self.store.create_queue(qid, kind, limits, float(self.now))
        if qid not in self.model:
            self.model[qid] = MQueue(kind, limits, last_active=self.now)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), item=st.binary(min_size=0, max_size=12))
    def append(self, data: st.DataObject, item: bytes) -> None:
        qid = data.draw(st.sampled_from(self._open_ids()))
        m = self.model[qid]
        seq = self.store.append(qid, item, float(self.now))
        while m.items and (len(m.items) + 1 > m.limits.max_length or m.bytes + len(item) > m.limits.max_bytes):
            m.drop_oldest(1, "overflow-count" if len(m.items) + 1 > m.limits.max_length else "overflow-bytes")
        assert seq == m.tail
        m.items.append((seq, item, self.now))
        m.tail = seq + 1

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), k=st.integers(0, 7))
    def ack(self, data: st.DataObject, k: int) -> None:
        qid = data.draw(st.sampled_from(self._open_ids()))
        m = self.model[qid]
        upto = (m.items[0][0] if m.items else m.tail) + k - 1
        n = self.store.ack(qid, upto, float(self.now))
        removed = [i for i in m.items if i[0] <= upto]
        assert n == len(removed)
        m.items = m.items[len(removed) :]
        if self.now > m.last_active:
            m.last_active = self.now

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), n=st.integers(1, 4))
    def shed(self, data: st.DataObject, n: int) -> None:
        qid = data.draw(st.sampled_from(self._open_ids()))
        assert self.store.shed_oldest(qid, max_items=n) == min(n, len(self.model[qid].items))
        self.model[qid].drop_oldest(n, "budget")

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        qid = data.draw(st.sampled_from(self._open_ids()))
        self.store.remove_queue(qid)
        del self.model[qid]

    @rule(dt=st.integers(0, 20))
    def tick(self, dt: int) -> None:
        self.now += dt
        expired = {e.queue_id for e in self.store.handle_timer(float(self.now))}
        want: set[str] = set()
        for qid, m in list(self.model.items()):
            exp = m.limits.expiry_s
            if exp <= 0:
                continue
            if m.kind is QueueKind.SUBSCRIPTION and self.now >= m.last_active + exp:
                want.add(qid)
                del self.model[qid]
                continue
            old = [i for i in m.items if i[2] <= self.now - exp]
            m.drop_oldest(len(old), "expired")
        assert expired == want

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), k=st.integers(1, 5))
    def peek(self, data: st.DataObject, k: int) -> None:
        qid = data.draw(st.sampled_from(self._open_ids()))
        m = self.model[qid]
        after = m.items[1][0] - 1 if len(m.items) > 1 else 0
        want = [(s, b) for s, b, _t in m.items if s > after][:k]
        assert self.store.peek(qid, after, k) == want

    @precondition(lambda self: self.batch is None)
    @rule()
    def prepare_flush(self) -> None:
        self.batch = self.store.prepare_flush(float(self.now))
        self.batch_snapshot = copy.deepcopy(self.model)
        self.written = False

    @precondition(lambda self: self.batch is not None and not self.written)
    @rule(full=st.booleans())
    def write_flush(self, full: bool) -> None:
        assert self.batch is not None
        if full:
            self.backend.fail_next_commits = 1
        self.outcome = self.store.write_flush(self.batch)
        if self.batch.empty:
            assert self.outcome is FlushOutcome.OK
        self.written = True

    @precondition(lambda self: self.batch is not None and self.written)
    @rule()
    def complete_flush(self) -> None:
        assert self.batch is not None
        self.store.complete_flush(self.batch, self.outcome, float(self.now))
        if self.outcome is FlushOutcome.OK:
            self.durable = self.batch_snapshot
        elif self.outcome is FlushOutcome.STORAGE_FULL and self.model and self.SHED_WHEN_FULL:
            qid = max(self.model, key=lambda q: (self.model[q].bytes, q))
            m = self.model[qid]
            m.drop_oldest(max(1, len(m.items) // 4), "storage-full")
        self.batch = None

    @rule()
    def crash(self) -> None:
        """kill -9: RAM is gone, the journal on tmpfs and the committed store remain."""
        self.store.abandon()
        if self.batch is not None and self.written and self.outcome is FlushOutcome.OK:
            self.durable = self.batch_snapshot
        self._reopen()
        assert not self.store.journal_report.corrupt

    @rule()
    def power_cut(self) -> None:
        """Reboot: RAM and tmpfs are gone; only committed transactions remain."""
        self.store.abandon()
        if self.batch is not None and self.written and self.outcome is FlushOutcome.OK:
            self.durable = self.batch_snapshot
        shutil.rmtree(self.journal_dir)
        os.makedirs(self.journal_dir)
        self.model = copy.deepcopy(self.durable)
        self._reopen()
        # Documented (storage README): a queue emptied within the flush window keeps no durable record of
        # its next sequence (that would cost a header write per flush), so after a power cut - never after
        # a crash - its numbering may restart lower. Nothing durable carried those numbers.
        for qid, m in self.model.items():
            if not m.items:
                m.tail = min(m.tail, self.store.stats(qid).tail)

    # ----------------------------------------------------------------- invariants

    @invariant()
    def same_state(self) -> None:
        assert sorted(self.store.queue_ids()) == self._open_ids()
        for qid, m in self.model.items():
            s = self.store.stats(qid)
            assert s.depth == len(m.items), qid
            assert s.bytes == m.bytes, qid
            assert s.drops == m.drops, qid
            if m.items:
                assert s.head == m.items[0][0]
            assert s.depth <= m.limits.max_length
            got = self.store.peek(qid, 0, len(m.items) + 1)
            assert got == [(seq, b) for seq, b, _t in m.items], qid


class KeepingStoreMachine(StoreMachine):
    """``onDiskFull = "refuse"``: a full store keeps every accepted item and retries."""

    SHED_WHEN_FULL = False


TestKeepingStoreModel = KeepingStoreMachine.TestCase
TestKeepingStoreModel.settings = settings(
    max_examples=int(os.environ.get("WAVEMQ_MODEL_EXAMPLES", "150")) // 3,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestStoreModel = StoreMachine.TestCase
TestStoreModel.settings = settings(
    max_examples=int(os.environ.get("WAVEMQ_MODEL_EXAMPLES", "150")),
    stateful_step_count=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
