"""The router a client dials when not told otherwise, in a module of its own: the command line's
``--help`` shows it without loading the client."""

from __future__ import annotations

__all__ = ["DEFAULT_ROUTER"]

#: ``LocalConfig.listenAddr``'s default (``config/schema.py``): a router run on its embedded default.
DEFAULT_ROUTER = "127.0.0.1:4516"
