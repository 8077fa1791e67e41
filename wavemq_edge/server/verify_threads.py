"""Signature checks on more than one core: a batch split between the event loop and worker threads.

The router core asks ``verify_many`` for the signatures of each read's publishes in one call
(``router/publish_batch.py``). PyNaCl releases the GIL while it verifies, so a batch split in parts, one
checked by the loop's thread and the others by worker threads at the same time, takes the time of its
largest part. The call still returns only when every part is done, so the core dispatches the frames in
order afterwards, as with the sequential verifier: what is accepted, and in which order, is unchanged.

Handing a part to a thread and waking it costs a few tens of microseconds (on a Raspberry Pi-class core,
about one verify), so a batch smaller than ``MIN_PARALLEL_BATCH`` is checked in the loop's thread alone.
``LimitsConfig.verifyThreads`` sets the number of worker threads: 0 keeps every check on the loop; the
default (-1) uses one when the process may run on more than one CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

from ..wave.batch import SignatureCheck, verify_sequential

__all__ = ["MIN_PARALLEL_BATCH", "ThreadedVerifier", "worker_threads"]

#: Smallest batch split between threads (measured: below it the hand-over costs more than it saves).
MIN_PARALLEL_BATCH: Final = 4


def worker_threads(configured: int) -> int:
    """``LimitsConfig.verifyThreads``: -1 is one worker when this process may use more than one CPU."""
    if configured >= 0:
        return configured
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return 1 if cpus > 1 else 0


class ThreadedVerifier:
    """``verify_many`` over ``threads`` worker threads and the caller's; see the module docstring."""

    def __init__(self, threads: int, min_batch: int = MIN_PARALLEL_BATCH) -> None:
        if threads < 1:
            raise ValueError(f"threads={threads} must be >= 1")
        self.threads = threads
        self.min_batch = max(2, min_batch)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wavemq-verify")
        #: batches checked, and those split between threads
        self.batches = 0
        self.split = 0

    def verify_many(self, checks: Sequence[SignatureCheck]) -> list[bool]:
        self.batches += 1
        n = len(checks)
        if n < self.min_batch:
            return verify_sequential(checks)
        self.split += 1
        size = -(-n // (self.threads + 1))
        futures: list[Future[list[bool]]] = [self._pool.submit(verify_sequential, checks[i:i + size])
                                             for i in range(size, n, size)]
        out = verify_sequential(checks[:size])
        for future in futures:
            out.extend(future.result())
        return out

    def close(self) -> None:
        """Stop the worker threads (after the batch in progress, if any)."""
        self._pool.shutdown(wait=True)
