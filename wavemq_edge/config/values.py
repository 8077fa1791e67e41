"""Checks of single values that the loader and the command line share: listen addresses and namespace
hashes. Each raises ``ValueError`` with a message saying what is wrong and what would be right."""

from __future__ import annotations

import base64
import ipaddress
from typing import Final

from .model import ListenAddress

__all__ = ["NAMESPACE_HASH_CHARS", "parse_listen_address", "validate_namespace_hash"]


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``host:port`` (``[v6]:port`` for IPv6). Raises ValueError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("must be host:port, for example 127.0.0.1:4516")
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise ValueError("an IPv6 address is written [address]:port, for example [::1]:4516")
        host, port_text = text[1:close], text[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError("must be host:port, for example 127.0.0.1:4516")
        if ":" in host:
            raise ValueError("an IPv6 address is written [address]:port, for example [::1]:4516")
        if " " in host or not all(c.isalnum() or c in ".-_" for c in host):
            raise ValueError(f"{host!r} is not a host name or IPv4 address")
    if not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return ListenAddress(host, port)


#: The printable form of a namespace (an entity hash): 48 characters of URL-safe base64. WAVE 3 hashes
#: are 34-byte multihashes (``Gy...==``); WAVE-lite's are 36-byte BLAKE2b multihashes (``oOQC...``).
NAMESPACE_HASH_CHARS: Final = 48
_B64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def validate_namespace_hash(text: str) -> None:
    """Raise ValueError unless ``text`` looks like a namespace hash as ``wv inspect`` prints it."""
    rule = (
        "must be a namespace hash: 48 characters of URL-safe base64 as printed by "
        "`wv inspect namespace.ent` (for example GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w==)"
    )
    if not isinstance(text, str) or len(text) != NAMESPACE_HASH_CHARS:
        raise ValueError(rule)
    body = text.rstrip("=")
    if len(text) - len(body) > 2 or any(c not in _B64URL for c in body):
        raise ValueError(rule)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ValueError(rule) from None
    if len(raw) not in (34, 36):
        raise ValueError(rule)

