"""The threaded batch verifier (server/verify_threads.py): the same answers as the sequential one."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence

import pytest
from nacl.signing import SigningKey

from wavemq_edge.server.verify_threads import ThreadedVerifier, worker_threads
from wavemq_edge.wave.batch import SignatureCheck, verify_sequential


def mixed_checks(n: int, seed: int) -> list[SignatureCheck]:
    """Good signatures, flipped bits in the signature or the message, the wrong key, a short signature."""
    rng = random.Random(seed)
    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(3)]
    out: list[SignatureCheck] = []
    for i in range(n):
        key = keys[i % 3]
        msg = rng.randbytes(rng.randrange(1, 300))
        sig = key.sign(msg).signature
        kind = rng.randrange(5)
        if kind == 1:
            sig = sig[:10] + bytes([sig[10] ^ 4]) + sig[11:]
        elif kind == 2:
            msg = bytes([msg[0] ^ 1]) + msg[1:]
        elif kind == 3:
            key = keys[(i + 1) % 3]
        out.append((key.verify_key, msg, sig))
    out.append((keys[0].verify_key, b"short", b"x" * 10))
    return out


@pytest.mark.parametrize("threads", [1, 3])
def test_results_are_those_of_the_sequential_verifier(threads: int) -> None:
    pool = ThreadedVerifier(threads, min_batch=4)
    answers: list[bool] = []
    try:
        for n, seed in ((0, 1), (1, 2), (3, 3), (4, 4), (5, 5), (17, 6), (64, 7)):
            checks = mixed_checks(n, seed)
            expected = verify_sequential(checks)
            assert pool.verify_many(checks) == expected
            answers += expected
        assert answers.count(True) > 10 and answers.count(False) > 10
        assert pool.split == 5 and pool.batches == 7  # 4, 5, 6, 18 and 65 checks are split; 1 and 2 are not
    finally:
        pool.close()


def test_a_split_batch_is_checked_in_another_thread_too(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[int] = set()
    checks = mixed_checks(11, 9)
    pool = ThreadedVerifier(1, min_batch=2)
    real = verify_sequential

    def recording(part: Sequence[SignatureCheck]) -> list[bool]:
        seen.add(threading.get_ident())
        return real(part)

    monkeypatch.setattr("wavemq_edge.server.verify_threads.verify_sequential", recording)
    try:
        assert pool.verify_many(checks) == real(checks)
    finally:
        pool.close()
    assert threading.get_ident() in seen and len(seen) == 2


def test_worker_threads_setting() -> None:
    assert worker_threads(0) == 0 and worker_threads(2) == 2
    assert worker_threads(-1) in (0, 1)
    with pytest.raises(ValueError, match="threads=0"):
        ThreadedVerifier(0)
