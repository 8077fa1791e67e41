"""How much room a store has, and how much a message will take in it: the inputs of the disk check.

The router refuses a publish it could not keep (``onDiskFull = "refuse"``, ``router/disk_guard.py``)
*before* answering OK, so it needs two figures at admission, not at the next budget sample:

* ``free_space(path)``: the free bytes of the filesystem a store lives on (``statvfs``, about a
  microsecond) and its device, so two stores on one filesystem are charged against one figure;
* ``stored_bytes(payload)``: what one item of ``payload`` bytes costs in the LMDB file. LMDB keeps a
  node (8-byte header, key, value) inline in a 4 KiB leaf page while it fits in half a page
  (``MDB_NODEMAX``, 2 040 bytes); a larger value goes to overflow pages of its own, whole pages: a
  2 KiB message takes 4 KiB on disk, twice its size (a 200-byte one 1.17 times, storage README).

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
#: Leaf pages are not full (splits leave them half full, appends fill them): charge a quarter more.
_LEAF_FILL: Final = 1.25


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


def stored_bytes(payload: int, key: int = 8, value_header: int = 8) -> int:
    """Bytes one item of ``payload`` bytes takes in an LMDB file: its leaf node (with a 2-byte slot
    pointer), plus whole overflow pages when the value does not fit inline. ``value_header``: bytes the
    store puts before the payload (the queue store's 8-byte enqueue time)."""
    value = payload + value_header
    node = _NODE_HEADER + key + value
    if node <= _NODE_MAX:
        return int((node + 2) * _LEAF_FILL)
    pages = -(-(_PAGE_HEADER + value) // PAGE_BYTES)
    return pages * PAGE_BYTES + int((_NODE_HEADER + key + 8 + 2) * _LEAF_FILL)
