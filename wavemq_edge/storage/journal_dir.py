"""The crash journal's directory is a trust boundary: what is in it is replayed as accepted messages.

The default ``/dev/shm/wavemq-edge-<uid>`` lives in a world-writable directory, so another local user
could create it first, or a symlink by that name, and feed records to the next restart. So:

* ``prepare_journal_dir`` creates the directory 0700 (whatever the umask) or, when it exists, opens it
  without following a symlink and refuses it (``JournalDirError``, one line) unless it is a directory
  owned by this process's user in which neither group nor others may write. One that others could
  only read (an older version made it 0755 under umask 022) is narrowed to 0700, with a warning.
* Every record carries a keyed MAC (BLAKE2b) under a per-boot key kept beside the journal in
  ``journal.key`` (0600, with the boot id it belongs to): a record the router did not write does not
  verify and is not replayed. A key file that is not a private regular file of ours, or from another
  boot, is replaced by a new key (so nothing written under the old one is replayed).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from typing import Final

from .errors import JournalError

__all__ = ["KEY_FILE", "JournalDirError", "journal_key", "prepare_journal_dir", "private_subdir"]

log = logging.getLogger("wavemq_edge.storage")

KEY_FILE: Final = "journal.key"
KEY_BYTES: Final = 32
_BOOT_ID_BYTES: Final = 16


class JournalDirError(JournalError):
    """The journal directory cannot be trusted (not ours, a symlink, open to others) or created."""


def _open_dir(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise JournalDirError(f"journal directory {path} is a symbolic link; refusing it (remove it, "
                                  f"or set QueueConfig.journalDir to a directory of this user)") from None
        if e.errno == errno.ENOTDIR:
            raise JournalDirError(f"journal directory {path} exists and is not a directory") from None
        raise JournalDirError(f"cannot open journal directory {path}: {e.strerror}") from None


def _check_owned_private(path: str, fd: int, uid: int) -> None:
    st = os.fstat(fd)
    if st.st_uid != uid:
        raise JournalDirError(f"journal directory {path} is owned by uid {st.st_uid}, not by this router's "
                              f"uid {uid}; refusing it (another user may have created it: remove it, or set "
                              f"QueueConfig.journalDir)")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise JournalDirError(f"journal directory {path} has mode {mode:03o}: group or others can write in it; "
                              f"refusing it (remove it, or chmod 700 {path} if nobody else used it)")
    if mode & 0o077:
        # Ours, and nobody else could write in it: only reading was open to others. Close that.
        os.fchmod(fd, 0o700)
        log.warning("event=journal_dir_mode_tightened path=%s mode=%03o new_mode=700", path, mode)


def prepare_journal_dir(path: str, uid: int | None = None) -> None:
    """Create ``path`` 0700, or check that the existing one is ours and private (see the module doc)."""
    uid = os.geteuid() if uid is None else uid
    parent = os.path.dirname(os.path.abspath(path))
    try:
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        created = False
    except OSError as e:
        raise JournalDirError(f"cannot create journal directory {path}: {e.strerror}") from None
    fd = _open_dir(path)
    try:
        if created:
            os.fchmod(fd, 0o700)  # mkdir's mode is masked by the umask
        _check_owned_private(path, fd, uid)
    finally:
        os.close(fd)


def private_subdir(path: str, uid: int | None = None) -> None:
    """One store's directory inside a checked journal directory: created 0700, never a symlink."""
    prepare_journal_dir(path, uid)


def journal_key(journal_dir: str, boot_id: bytes, uid: int | None = None) -> bytes:
    """The MAC key of this boot, from ``<journal_dir>/journal.key``, made when missing or unusable.
    Several routers may share the directory (two on one machine with the default): reading or making
    the key happens under an exclusive ``flock`` of the directory, so they all end up with one key."""
    uid = os.geteuid() if uid is None else uid
    dir_fd = _open_dir(journal_dir)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        return _read_or_make_key(os.path.join(journal_dir, KEY_FILE), boot_id, uid)
    finally:
        os.close(dir_fd)  # releases the lock


def _read_or_make_key(path: str, boot_id: bytes, uid: int) -> bytes:
    why = "missing"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = -1
    except OSError as e:
        fd, why = -1, f"unreadable ({e.strerror})"
    if fd >= 0:
        try:
            st = os.fstat(fd)
            data = os.read(fd, _BOOT_ID_BYTES + KEY_BYTES + 1)
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077:
            why = "not a private file of this user"
        elif len(data) != _BOOT_ID_BYTES + KEY_BYTES:
            why = "malformed"
        elif data[:_BOOT_ID_BYTES] != boot_id:
            why = "another boot"
        else:
            return data[_BOOT_ID_BYTES:]
        log.warning("event=journal_key_replaced path=%s reason=%r (records written under the old key will "
                    "not be replayed)", path, why)
    return _new_key(path, boot_id)


def _new_key(path: str, boot_id: bytes) -> bytes:
    key = os.urandom(KEY_BYTES)
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, boot_id + key)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        raise JournalDirError(f"cannot write the journal key {path}: {e.strerror}") from None
    return key
