"""Volatile crash journal on tmpfs: what the durable store does not hold yet, in RAM, not on flash.

Why
---
The durable store (LMDB) is written once per flush window, so a process crash (``kill -9``, the OOM
killer) would lose the window, as in the original (wavemq-behaviour.md §4.5). Every accepted change is
therefore also appended, before the call returns, to a journal file on tmpfs: ``write(2)`` into tmpfs
is a memory copy that outlives the process but not a reboot. The journal costs no flash writes and no
fsync.

Layout
------
The journal of one store lives in ``<journal_dir>/<store-id hex>/`` as numbered *segments*
``<name>.<gen:016x>.wal``. A segment starts with a header (magic, store id, generation, boot id) and
then holds records ``u32 length | 16-byte tag | body``; the tag is a keyed BLAKE2b MAC of the
segment's generation, the record's offset and the body, under the per-boot key of ``journal_dir.py``
(the directory is a trust boundary: a record the router did not write there is not replayed).
A flush rotates to a new segment when it takes
its snapshot; the flush transaction records the highest generation it covers in the durable store, and
after the commit the covered segments are deleted. On start, segments newer than the covered
generation are replayed in order. A segment from another boot (boot id differs: the journal directory
was not tmpfs and survived a reboot, unsynced) or another store is not replayed; it is renamed to
``*.stale`` and reported. A torn final record (the process died inside ``write``) ends replay quietly;
a bad tag in the middle (damage, or a record the router did not write) ends replay loudly, counted
in ``JournalReport.rejected``: the bad segment is renamed ``*.corrupt``, the durable
store is untouched, and ``JournalReport.corrupt`` says what happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from .journal_dir import journal_key, prepare_journal_dir

__all__ = ["Journal", "JournalReport", "is_tmpfs", "read_boot_id"]

log = logging.getLogger("wavemq_edge.storage")

_MAGIC: Final = b"WMQJ\x02\n"
_HEADER: Final = struct.Struct("<6s16sQ16s")
_TAG_BYTES: Final = 16
_RECORD: Final = struct.Struct(f"<I{_TAG_BYTES}s")
_POSITION: Final = struct.Struct("<QQ")
#: A record longer than this is corruption, not data: items are bounded by the frame size.
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
_KEEP_BAD_FILES: Final = 4


def read_boot_id() -> bytes:
    """The kernel's per-boot random id (16 bytes); zeros where unavailable."""
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            text = f.read().strip().replace(b"-", b"")
        return bytes.fromhex(text.decode("ascii"))[:16].ljust(16, b"\0")
    except (OSError, ValueError):
        return b"\0" * 16


def is_tmpfs(path: str) -> bool | None:
    """Whether ``path`` lives on tmpfs/ramfs (from ``/proc/mounts``); ``None`` if unknown."""
    try:
        real = os.path.realpath(path)
        best = ""
        fstype = ""
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
        return fstype in ("tmpfs", "ramfs") if best else None
    except OSError:
        return None


@dataclass(slots=True)
class JournalReport:
    """What recovery found. ``records`` were replayed; ``corrupt``/``stale`` name the files set aside."""

    segments: int = 0
    records: int = 0
    torn_tail: bool = False
    #: complete records whose MAC did not verify (damaged, or not written by this router): not replayed
    rejected: int = 0
    corrupt: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


class Journal:
    """Append-only segments of one store. Not thread-safe: used from the event-loop thread only."""

    def __init__(self, directory: str, name: str, store_id: bytes, boot_id: bytes | None = None,
                 key: bytes | None = None) -> None:
        """``directory`` is ``<journal_dir>/<store id hex>``; ``journal_dir`` is checked (ours, 0700, no
        symlink: ``JournalDirError``) and holds the per-boot ``key`` unless one is given."""
        self.directory = directory
        self.name = name
        self.store_id = store_id
        self.boot_id = boot_id if boot_id is not None else read_boot_id()
        self.gen = 0
        self.segment_bytes = 0
        self.broken = False
        self._fd = -1
        parent = os.path.dirname(os.path.abspath(directory))
        prepare_journal_dir(parent)
        prepare_journal_dir(directory)
        key = key if key is not None else journal_key(parent, self.boot_id)
        self._mac = hashlib.blake2b(key=key, digest_size=_TAG_BYTES, salt=store_id[:16].ljust(16, b"\0"),
                                    person=name.encode()[:16])

    def _tag(self, gen: int, offset: int, body: bytes) -> bytes:
        h = self._mac.copy()
        h.update(_POSITION.pack(gen, offset))
        h.update(body)
        return h.digest()

    # ----------------------------------------------------------------- recovery

    def _segments(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        prefix = self.name + "."
        for entry in os.listdir(self.directory):
            if entry.startswith(prefix) and entry.endswith(".wal"):
                middle = entry[len(prefix) : -4]
                try:
                    out.append((int(middle, 16), os.path.join(self.directory, entry)))
                except ValueError:
                    continue
        out.sort()
        return out

    def _set_aside(self, path: str, suffix: str) -> str:
        target = path + "." + suffix
        try:
            os.replace(path, target)
        except OSError:
            return path
        olds = sorted(
            (os.path.join(self.directory, e) for e in os.listdir(self.directory) if e.endswith("." + suffix)),
            key=lambda p: os.stat(p).st_mtime,
        )
        for old in olds[:-_KEEP_BAD_FILES]:
            with contextlib.suppress(OSError):
                os.unlink(old)
        return target

    def recover(self, covered_gen: int, report: JournalReport) -> Iterator[bytes]:
        """Yield the record bodies of segments newer than ``covered_gen``, in order, stopping at the
        first damage (later records may depend on the lost ones). Deletes covered segments."""
        segments = self._segments()
        highest = covered_gen
        stop = False
        for gen, path in segments:
            highest = max(highest, gen)
            if gen <= covered_gen:
                _unlink(path)
                continue
            if stop:
                report.corrupt.append(self._set_aside(path, "corrupt"))
                continue
            data = _read_own(path)
            if data is None:
                log.error("event=journal_corrupt path=%s reason=not_ours", path)
                report.corrupt.append(self._set_aside(path, "corrupt"))
                stop = True
                continue
            hdr_ok = len(data) >= _HEADER.size
            if hdr_ok:
                magic, store_id, seg_gen, boot_id = _HEADER.unpack_from(data, 0)
                hdr_ok = magic == _MAGIC and seg_gen == gen
            if not hdr_ok:
                if len(data) == 0:
                    _unlink(path)  # created, header never written: nothing was accepted into it
                    continue
                log.error("event=journal_corrupt path=%s reason=bad_header", path)
                report.corrupt.append(self._set_aside(path, "corrupt"))
                stop = True
                continue
            if store_id != self.store_id or boot_id != self.boot_id:
                why = "other_store" if store_id != self.store_id else "other_boot"
                log.warning("event=journal_stale path=%s reason=%s", path, why)
                report.stale.append(self._set_aside(path, "stale"))
                continue
            report.segments += 1
            pos = _HEADER.size
            end = len(data)
            while pos < end:
                length, tag = 0, b""
                if end - pos >= _RECORD.size:
                    length, tag = _RECORD.unpack_from(data, pos)
                body_start = pos + _RECORD.size
                if end - pos < _RECORD.size or (length <= MAX_RECORD_BYTES and body_start + length > end):
                    # The process died inside write(2): that call never returned, so the change was
                    # never accepted. Cut it off so a later recovery sees a clean segment end.
                    report.torn_tail = True
                    log.warning("event=journal_torn_tail path=%s offset=%d", path, pos)
                    with contextlib.suppress(OSError):
                        os.truncate(path, pos)
                    break
                if length > MAX_RECORD_BYTES:
                    log.error("event=journal_corrupt path=%s offset=%d reason=bad_length", path, pos)
                    report.corrupt.append(self._set_aside(path, "corrupt"))
                    stop = True
                    break
                body = data[body_start : body_start + length]
                if self._tag(gen, pos, body) != tag:
                    report.rejected += 1
                    log.error("event=journal_record_rejected path=%s offset=%d reason=bad_mac (damaged, or not "
                              "written by this router: not replayed, nor anything after it)", path, pos)
                    report.corrupt.append(self._set_aside(path, "corrupt"))
                    stop = True
                    break
                report.records += 1
                yield body
                pos = body_start + length
        self.gen = highest

    # ----------------------------------------------------------------- writing

    def open_next(self) -> int:
        """Start a new segment (generation + 1) and make it current; returns the previous generation,
        which the caller's next flush covers. On failure the journal is ``broken``."""
        previous = self.gen
        self.gen = previous + 1
        self._close_fd()
        path = os.path.join(self.directory, f"{self.name}.{self.gen:016x}.wal")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600)
            os.write(fd, _HEADER.pack(_MAGIC, self.store_id, self.gen, self.boot_id))
        except OSError as e:
            self._mark_broken(f"cannot open journal segment {path!r}: {e}")
            return previous
        self._fd = fd
        self.segment_bytes = _HEADER.size
        self.broken = False
        return previous

    def write(self, body: bytes) -> bool:
        """Append one record; ``False`` (and ``broken``) if it could not be written."""
        return self.write_many((body,))

    def write_many(self, bodies: tuple[bytes, ...] | list[bytes]) -> bool:
        if self._fd < 0:
            return False
        parts: list[bytes] = []
        offset = self.segment_bytes
        for body in bodies:
            parts.append(_RECORD.pack(len(body), self._tag(self.gen, offset, body)))
            parts.append(body)
            offset += _RECORD.size + len(body)
        buf = b"".join(parts)
        try:
            written = os.write(self._fd, buf)
            if written != len(buf):
                raise OSError(f"short write {written} of {len(buf)} bytes")
        except OSError as e:
            self._mark_broken(f"journal write to {self.directory!r} failed: {e}")
            return False
        self.segment_bytes += len(buf)
        return True

    def drop_upto(self, gen: int) -> None:
        """Delete segments with generation <= ``gen`` (a committed flush covers them)."""
        for seg_gen, path in self._segments():
            if seg_gen <= gen and seg_gen != self.gen:
                _unlink(path)

    def _mark_broken(self, message: str) -> None:
        if not self.broken:
            log.error("event=journal_broken detail=%r (crash protection off until the next flush)", message)
        self.broken = True
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def close(self, remove_all: bool) -> None:
        """Close; with ``remove_all`` (after a final flush) delete every segment of this store."""
        self._close_fd()
        if remove_all:
            for _gen, path in self._segments():
                _unlink(path)
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _read_own(path: str) -> bytes | None:
    """The segment's bytes, or ``None`` when it is not a regular file of this process's user."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)
