"""Units shared by the whole package, defined once.

The configuration file states sizes in MB (WAVEMQ's ``*QueueMaxSize`` keys: mebibytes, as the original
multiplied by ``1024 * 1024``); the parts take bytes. ``server/derive.py`` is the one place that turns a
configured size into bytes; the other users of ``MIB`` state their own constants or format figures for
people.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIB"]

#: One mebibyte in bytes: the "MB" of the configuration file and of log lines.
MIB: Final = 1024 * 1024
