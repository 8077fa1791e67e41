"""Wire-level errors, with blame (h11's Local/Remote split) and the close code to send."""

from __future__ import annotations

from .codes import CloseCode

__all__ = ["FieldError", "LocalWireError", "RemoteWireError", "WireError"]


class WireError(Exception):
    """Base of every frame-codec error. ``close_code`` is what an error frame should carry."""

    def __init__(self, message: str, close_code: CloseCode) -> None:
        super().__init__(message)
        self.close_code = close_code


class LocalWireError(WireError):
    """We misused the codec (for example tried to encode a frame larger than the limit)."""


class RemoteWireError(WireError):
    """The peer sent bytes that break the framing rules; the connection must be closed."""


class FieldError(RemoteWireError, ValueError):
    """A frame of a known type whose fields have the wrong number or type (raised by ``wire.fields``).

    Blame is on the peer that sent the frame, and the close code is always ``BAD_FIELDS``; ``field``
    names the offending field (``"DELIVER seq"``), so a caller that maps it onto its own violation
    (the trunk) keeps the message. A ``ValueError`` too: it is a bad value, and code that guarded a
    tuple unpacking with ``except ValueError`` keeps working.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, CloseCode.BAD_FIELDS)
        self.field = field
