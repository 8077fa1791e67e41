"""Ed25519 signature checks as plain data, so a batch of them can be checked in one call, anywhere.

A ``SignatureCheck`` is ``(public key, signed bytes, signature)``: what ``VerifyKey.verify`` needs and
nothing else, so a router can parse its input on the event loop and have the signatures checked by
another thread (PyNaCl releases the GIL while it verifies). ``verify_sequential`` is the reference: the
checks in the caller's thread, in order; a batch verifier of any kind must return exactly what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

__all__ = ["BatchVerify", "SignatureCheck", "check_signature", "verify_sequential"]

#: (public key, signed bytes, signature)
SignatureCheck: TypeAlias = tuple[VerifyKey, bytes, bytes]
#: Checks a batch, returning one bool per check, in order.
BatchVerify: TypeAlias = Callable[[Sequence[SignatureCheck]], list[bool]]


def check_signature(check: SignatureCheck) -> bool:
    key, signed, signature = check
    try:
        key.verify(signed, signature)
    except (BadSignatureError, ValueError):  # ValueError: a signature of the wrong length
        return False
    return True


def verify_sequential(checks: Sequence[SignatureCheck]) -> list[bool]:
    """Every check in the caller's thread, in order."""
    return [check_signature(c) for c in checks]
