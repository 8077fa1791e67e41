"""Operations: logging set-up, (later) budget watch, systemd notify and metrics."""

from .logging import configure_logging

__all__ = ["configure_logging"]
