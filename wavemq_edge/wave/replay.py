"""Replay suppression: a bounded window of ``(source, id)`` pairs already accepted.

Messages are deduplicated by ``(src, msg_id)`` and requests by ``(src, nonce)`` (reference §7.7). The
timestamp check refuses anything older than ``max_age_s``, so the window only has to remember ids
younger than that.

Layout (about 22 bytes per remembered id at the bound, against ~270 for a set of tuples plus a heap):

* each pair is reduced to a 64-bit fingerprint, BLAKE2b keyed with a random per-guard key (so nobody
  can aim a collision at another source's id; an accidental one, a false REPLAYED, has odds of about
  ``entries / 2**64``);
* fingerprints live in one open-addressing table (``array('Q')``, linear probing, load at most 3/4,
  deletion by backward shift, so no tombstones; the table doubles as it fills, up to the size the bound
  needs, so a quiet router holds 32 KiB);
* for expiry, each fingerprint is also appended to the bucket of its timestamp (``array('Q')`` plus a
  16-bit offset in ms): a bucket spans ``max(1 s, max_age / 64)``; a whole bucket is forgotten once its
  end is older than ``now - max_age_s``, so an id is remembered at least ``max_age_s`` and at most one
  bucket longer.

At the ``max_entries`` bound the id with the oldest timestamp is dropped *and the floor is raised above
its timestamp*: an object older than the floor is refused as REPLAYED, because we can no longer tell
whether we saw it. Under a flood the window narrows; it never lets a replay through.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import os
from array import array
from typing import Final

from .errors import Reason, VerificationError

__all__ = ["REPLAY_WINDOW_MAX", "ReplayGuard"]

#: Ids remembered: a 2**19-slot table at 3/4 load. The guard's window is ``request_max_age_s + skew_s``
#: (600 s by default), so 655 messages/s fit without narrowing it. Memory: the table grows with use up
#: to 4 MiB, plus ~12 bytes per remembered id in the buckets: ~9.3 MB when full.
REPLAY_WINDOW_MAX: Final = 393_216

#: Buckets per window (each costs ~250 bytes however few ids it holds, which matters at low rates);
#: an id is remembered at most one bucket (1/64 of the window, ~9 s by default) past the window.
_BUCKETS_PER_WINDOW: Final = 64
_NEVER: Final = 1 << 62
#: The table starts at 32 KiB and doubles at 3/4 load up to the size ``max_entries`` needs.
_INITIAL_SLOTS: Final = 4096
_MAX_LOAD_NUM, _MAX_LOAD_DEN = 3, 4


class _Bucket:
    """The ids whose timestamps fall in one bucket: fingerprints and ms offsets, appended in arrival
    order. The first eviction at the bound sorts them by timestamp (stable: of equal timestamps the
    first to arrive goes first) and from then on they stay sorted: an append in order is an append, one
    out of order is inserted at its place. ``head``: entries before it are evicted already (the arrays
    are compacted when that is half of them)."""

    __slots__ = ("fps", "head", "offsets", "sorted")

    def __init__(self, offset_type: str) -> None:
        self.fps = array("Q")
        self.offsets = array(offset_type)
        self.sorted = False
        self.head = 0

    def __len__(self) -> int:
        return len(self.fps) - self.head

    def live(self) -> array[int]:
        return self.fps[self.head :] if self.head else self.fps

    def add(self, fp: int, offset: int) -> None:
        offsets = self.offsets
        if self.sorted and offsets and offset < offsets[-1]:
            at = bisect.bisect_right(offsets, offset, self.head)
            offsets.insert(at, offset)
            self.fps.insert(at, fp)
        else:
            offsets.append(offset)
            self.fps.append(fp)

    def pop_oldest(self) -> tuple[int, int]:
        """(fingerprint, offset) of the oldest id, removed."""
        if not self.sorted:
            order = sorted(range(len(self.offsets)), key=self.offsets.__getitem__)
            self.fps = array("Q", [self.fps[k] for k in order])
            self.offsets = array(self.offsets.typecode, [self.offsets[k] for k in order])
            self.sorted = True
        head = self.head
        oldest = self.fps[head], self.offsets[head]
        head += 1
        if head * 2 >= len(self.fps):
            del self.fps[:head]
            del self.offsets[:head]
            head = 0
        self.head = head
        return oldest


class ReplayGuard:
    __slots__ = (
        "_bucket_ms",
        "_buckets",
        "_count",
        "_floor_ms",
        "_grow_at",
        "_hasher",
        "_mask",
        "_max_age_ms",
        "_max_entries",
        "_max_slots",
        "_offset_type",
        "_starts",
        "_table",
        "dropped",
    )

    def __init__(self, *, max_age_s: float, max_entries: int = REPLAY_WINDOW_MAX) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries={max_entries} must be >= 1")
        self._max_age_ms = int(max_age_s * 1000)
        self._max_entries = max_entries
        slots = 8
        while slots * _MAX_LOAD_NUM < max_entries * _MAX_LOAD_DEN:
            slots *= 2
        self._max_slots = slots
        self._mask = min(slots, _INITIAL_SLOTS) - 1
        self._table = array("Q", bytes(8 * (self._mask + 1)))  # 0 = empty slot
        self._grow_at = self._grow_threshold()
        self._hasher = hashlib.blake2b(digest_size=8, key=os.urandom(16))  # copied per id: the key once
        self._bucket_ms = min(max(1000, self._max_age_ms // _BUCKETS_PER_WINDOW), 0xFFFFFFFF)
        self._offset_type = "H" if self._bucket_ms <= 0x10000 else "I"  # ms within a bucket
        self._buckets: dict[int, _Bucket] = {}
        self._starts: list[int] = []  # min-heap of the bucket numbers in _buckets
        self._count = 0
        self._floor_ms = 0
        self.dropped = 0

    def __len__(self) -> int:
        return self._count

    def accept(self, src: bytes, ident: bytes, timestamp_ms: int, now: float) -> None:
        """Record ``(src, ident)``; raise REPLAYED if seen (or too old to tell)."""
        horizon_ms = int(now * 1000) - self._max_age_ms
        starts = self._starts
        if starts and (starts[0] + 1) * self._bucket_ms <= horizon_ms:
            self._expire(horizon_ms)
        if timestamp_ms < self._floor_ms:
            raise VerificationError(Reason.REPLAYED, "older than the replay window can vouch for")
        hasher = self._hasher.copy()
        hasher.update(src)
        hasher.update(ident)
        fp = int.from_bytes(hasher.digest(), "little") or 1
        table = self._table
        mask = self._mask
        i = fp & mask
        while True:
            f = table[i]
            if f == 0:
                break
            if f == fp:
                raise VerificationError(Reason.REPLAYED, f"id {ident.hex()} from this source was already accepted")
            i = (i + 1) & mask
        bucket_ms = self._bucket_ms
        number = timestamp_ms // bucket_ms
        start = number * bucket_ms
        if start + bucket_ms <= horizon_ms:
            return  # already outside the window: it would be forgotten on the next call anyway
        table[i] = fp
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = _Bucket(self._offset_type)
            heapq.heappush(starts, number)
        bucket.add(fp, timestamp_ms - start)
        count = self._count = self._count + 1
        if count > self._grow_at:
            self._grow()  # after the append: it places what the buckets hold
        while self._count > self._max_entries:
            self._drop_oldest()

    def _grow(self) -> None:
        """Double the table (a quiet router keeps a small one): every remembered id is placed again, in
        one pass over the buckets (about 0.1 s for the last doubling to the default bound)."""
        mask = (self._mask << 1) | 1
        table = array("Q", bytes(8 * (mask + 1)))
        for bucket in self._buckets.values():
            for fp in bucket.live():
                i = fp & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = fp
        self._table, self._mask = table, mask
        self._grow_at = self._grow_threshold()

    def _grow_threshold(self) -> int:
        slots = self._mask + 1
        return slots * _MAX_LOAD_NUM // _MAX_LOAD_DEN if slots < self._max_slots else _NEVER

    def _expire(self, horizon_ms: int) -> None:
        starts = self._starts
        while starts and (starts[0] + 1) * self._bucket_ms <= horizon_ms:
            bucket = self._buckets.pop(heapq.heappop(starts))
            for fp in bucket.live():
                self._delete(fp)
            self._count -= len(bucket)

    def _drop_oldest(self) -> None:
        """At the bound: forget the id with the oldest timestamp and raise the floor above it."""
        number = self._starts[0]
        bucket = self._buckets[number]
        fp, offset = bucket.pop_oldest()
        self._delete(fp)
        self._count -= 1
        self.dropped += 1
        self._floor_ms = max(self._floor_ms, number * self._bucket_ms + offset + 1)
        if not bucket:
            heapq.heappop(self._starts)
            del self._buckets[number]

    def _delete(self, fp: int) -> None:
        """Remove ``fp`` from the table, shifting later entries of its probe run back into the hole so
        every remaining entry stays reachable from its home slot (no tombstones)."""
        table = self._table
        mask = self._mask
        i = fp & mask
        while table[i] != fp:
            if table[i] == 0:
                return
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            f = table[j]
            if f == 0:
                break
            home = f & mask
            # The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
            if (home <= i or home > j) if i <= j else (home <= i and home > j):
                table[i] = f
                i = j
        table[i] = 0
