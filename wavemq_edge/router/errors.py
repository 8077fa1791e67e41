"""Router errors, and how WAVE's refusals become the numbered codes agents see.

The codes themselves (``ErrorCode``, sent in ``REFUSED`` and ``SUB_END`` frames) are vocabulary both
ends share, so they live in ``wire/codes.py``; this module re-exports ``ErrorCode`` so router code keeps
importing it from here. README lists the codes. WAVE's refusal reasons (``wave.Reason``) map onto
them in ``code_for_reason``; the reason text always travels with the code, so a user sees *why* (which
grant is missing, which entity expired).
"""

from __future__ import annotations

from typing import Final

from ..wave import Reason
from ..wire.codes import ErrorCode

__all__ = ["ErrorCode", "RouterError", "code_for_reason"]


_BY_REASON: Final[dict[Reason, ErrorCode]] = {
    Reason.MALFORMED: ErrorCode.BAD_REQUEST,
    Reason.NON_CANONICAL: ErrorCode.BAD_REQUEST,
    Reason.OVERSIZE: ErrorCode.BAD_REQUEST,
    Reason.BAD_SIGNATURE: ErrorCode.BAD_SIGNATURE,
    Reason.ID_MISMATCH: ErrorCode.BAD_REQUEST,
    Reason.UNKNOWN_ENTITY: ErrorCode.UNKNOWN_ENTITY,
    Reason.EXPIRED: ErrorCode.PROOF_EXPIRED,
    Reason.NOT_YET_VALID: ErrorCode.PROOF_EXPIRED,
    Reason.REVOKED: ErrorCode.PROOF_REVOKED,
    Reason.TTL_EXCEEDED: ErrorCode.PROOF_INVALID,
    Reason.WRONG_NAMESPACE: ErrorCode.WRONG_NAMESPACE,
    Reason.NOT_FROM_NAMESPACE: ErrorCode.PROOF_INVALID,
    Reason.BROKEN_LINK: ErrorCode.PROOF_INVALID,
    Reason.BAD_PATH: ErrorCode.PROOF_INVALID,
    Reason.WRONG_SUBJECT: ErrorCode.WRONG_SUBJECT,
    Reason.INSUFFICIENT_PERMISSION: ErrorCode.PERMISSION_DENIED,
    Reason.WILDCARD_URI: ErrorCode.BAD_URI,
    Reason.REPLAYED: ErrorCode.REPLAYED,
    Reason.STALE_TIMESTAMP: ErrorCode.BAD_TIMESTAMP,
    Reason.FUTURE_TIMESTAMP: ErrorCode.BAD_TIMESTAMP,
    Reason.UNKNOWN_PROOF: ErrorCode.NO_PROOF,
    Reason.REVOCATION_FEED_STALE: ErrorCode.REVOCATION_STALE,
    Reason.WRONG_KIND: ErrorCode.BAD_REQUEST,
}


def code_for_reason(reason: Reason) -> ErrorCode:
    """Every ``Reason`` has a code (``tests/router/test_router_errors.py`` checks the table is total); a
    reason added to ``wave`` without one is a router bug, answered ``INTERNAL``."""
    return _BY_REASON.get(reason, ErrorCode.INTERNAL)


class RouterError(Exception):
    """A request is refused; ``code`` goes into the ``REFUSED`` frame with the message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
