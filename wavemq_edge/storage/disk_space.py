"""How much room a store has, and how much a message will take in it: the inputs of the disk check.

The router refuses a publish it could not keep (``onDiskFull = "refuse"``, ``router/disk_guard.py``)
*before* answering OK, so it needs two figures at admission, not at the next budget sample:

* ``free_space(path)``: the free bytes of the filesystem a store lives on (``statvfs``, about a
  microsecond) and its device, so two stores on one filesystem are charged against one figure;
* ``stored_bytes(payload)``: what one item of ``payload`` bytes costs in the LMDB file. LMDB keeps a
  node (8-byte header, key, value) inline in a 4 KiB leaf page while it fits in half a page
  (``MDB_NODEMAX``, 2 040 bytes), as many whole nodes per page as fit (three 1 000-byte items take a
  page: 1 365 bytes each); a larger value goes to overflow pages of its own, whole pages: a 2 KiB
  message takes 4 KiB on disk, twice its size (a 200-byte one 1.17 times, storage README).

Both are estimates made to err on the side of refusing: free pages inside an LMDB file (left by acked
items) are reused by later commits without growing the file, and are not counted as room.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

__all__ = ["PAGE_BYTES", "DiskSpace", "free_space", "stored_bytes"]

#: LMDB's page size on the platforms we run on (the OS page size; 4 KiB on x86-64 and ARM Linux).
PAGE_BYTES: Final = 4096
#: Page header (LMDB 0.9 ``PAGEHDRSZ``) and node header (``NODESIZE``) sizes.
_PAGE_HEADER: Final = 16
_NODE_HEADER: Final = 8
#: Largest node kept inline in a leaf: ((page - header) / MDB_MINKEYS) rounded down to even.
_NODE_MAX: Final = ((PAGE_BYTES - _PAGE_HEADER) // 2) & ~1
#: Branch pages and the free list on top of the leaves (measured: 1-5% at 50..2 000-byte items).
_OVERHEAD: Final = 1.1
#: The same for overflow pages: the leaf and branch pages that point at them (measured: under 1%).
_OVERFLOW_OVERHEAD: Final = 1.01


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """A filesystem's free bytes (available to this user) and its device number."""

    device: int
    free_bytes: int


def free_space(path: str) -> DiskSpace | None:
    """The room on ``path``'s filesystem; None when it cannot be read (no such directory)."""
    try:
        st = os.statvfs(path)
        device = os.stat(path).st_dev
    except OSError:
        return None
    return DiskSpace(device, st.f_bavail * st.f_frsize)


def stored_bytes(payload: int, key: int = 8, value_header: int = 8, fill: float = 1.0) -> int:
    """Bytes one item of ``payload`` bytes takes in an LMDB file. Inline, a leaf holds as many whole
    nodes (with their 2-byte slot) as fit, times ``fill``: 1.0 for appends in key order (queues), about
    0.7 for inserts in any order, whose page splits leave pages partly empty (persisted messages). A
    value too large to be inline takes whole overflow pages plus a small node. ``value_header``: bytes
    the store puts before the payload (the queue store's 8-byte enqueue time).

    Measured on x86-64 (2 000 items each, file growth per item vs this estimate): queue items of 50, 200,
    1 000, 1 900, 2 048 and 5 000 bytes took 80, 231, 1 374, 2 060, 4 125 and 8 221 bytes; persisted
    ones 125, 303, 2 087, 4 166, 4 176 and 8 272 (tests/storage/test_storage_disk_space.py)."""
    value = payload + value_header
    node = _NODE_HEADER + key + value
    if node <= _NODE_MAX:
        per_page = max(1, int((PAGE_BYTES - _PAGE_HEADER) // (node + 2) * fill))
        return int(PAGE_BYTES / per_page * _OVERHEAD)
    pages = -(-(_PAGE_HEADER + value) // PAGE_BYTES)
    return int(pages * PAGE_BYTES * _OVERFLOW_OVERHEAD) + int((_NODE_HEADER + key + 8 + 2) * _OVERHEAD)
