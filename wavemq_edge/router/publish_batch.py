"""The publishes of one read, parsed once and their signatures checked together, before dispatch.

Theory of operation
-------------------
An agent session decodes every complete frame of the bytes it was given, then, for the ``PUBLISH``
frames among them, parses each signed message once (``Message.parse``) and hands the signatures of those
signed by the connection's entity to the core's batch verifier (``RouterCore.verify_many``; sequential
in the caller's thread unless the server installs a parallel one) in **one** call. Dispatch then goes
through the frames in order, as before, and admission takes the parsed message and its signature result
instead of the raw bytes: nothing is parsed twice, a bad signature is refused at the same step with the
same error (``603 BAD_SIGNATURE``, counted there), and the order in which a publisher's messages are
accepted cannot change, because only the signature checks moved, and they depend on nothing but their
own bytes.

What is not prepared here (a frame with wrong fields, a message that fails in an unexpected way, any
frame before the connection authenticated) is dispatched exactly as before, from its raw bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..wave import Entity, Message, VerificationError
from ..wave.batch import BatchVerify, SignatureCheck
from ..wire import Frame, FrameType

__all__ = ["Prepared", "prepare_publishes"]


class Prepared(NamedTuple):
    """A PUBLISH frame's message, parsed: the message, or the error its parse raised, and the result of
    its signature check (None when it was not checked in the batch: admission refuses it before that)."""

    message: Message | None
    error: VerificationError | None
    signature_ok: bool | None


def prepare_publishes(frames: Sequence[Frame], entity: Entity, verify_many: BatchVerify) -> dict[int, Prepared]:
    """Index in ``frames`` -> ``Prepared``, for each PUBLISH frame whose message field is bytes."""
    out: dict[int, Prepared] = {}
    checks: list[SignatureCheck] = []
    checked: list[tuple[int, Message]] = []
    key, entity_id = entity.verify_key, entity.id
    for i, frame in enumerate(frames):
        if frame.type is not FrameType.PUBLISH or len(frame.fields) != 2 or type(frame.fields[1]) is not bytes:
            continue
        try:
            msg = Message.parse(frame.fields[1])
        except VerificationError as exc:
            out[i] = Prepared(None, exc, None)
            continue
        except Exception:  # a bug: left to dispatch, which answers it 699 and logs it
            continue
        if msg.src != entity_id:  # refused as WRONG_SOURCE before its signature matters
            out[i] = Prepared(msg, None, None)
            continue
        checked.append((i, msg))
        checks.append((key, msg.signed_bytes, msg.opened.signature))
    if checks:
        for (i, msg), ok in zip(checked, verify_many(checks), strict=True):
            out[i] = Prepared(msg, None, ok)
    return out
