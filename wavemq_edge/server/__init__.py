"""The daemon shell: start-up, serve, ordered bounded shutdown, and the one place the configuration is
turned into each part's options (``derive.py``)."""

from .shell import Server
from .startup import StartupError

__all__ = ["Server", "StartupError"]
