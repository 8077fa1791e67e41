"""Wire-level errors, with blame (h11's Local/Remote split) and the close code to send."""

from __future__ import annotations

from .frames import CloseCode

__all__ = ["LocalWireError", "RemoteWireError", "WireError"]


class WireError(Exception):
    """Base of every frame-codec error. ``close_code`` is what an error frame should carry."""

    def __init__(self, message: str, close_code: CloseCode) -> None:
        super().__init__(message)
        self.close_code = close_code


class LocalWireError(WireError):
    """We misused the codec (for example tried to encode a frame larger than the limit)."""


class RemoteWireError(WireError):
    """The peer sent bytes that break the framing rules; the connection must be closed."""
