"""The daemon's environment variables, read once when the configuration is loaded.

The router reads its process environment in exactly one place: ``Environment.from_mapping(os.environ)``
in the loader (``config/load.py``). The result is a frozen value carried on ``Config.environment``, and
the parts get what they need from it as parameters (the journal directory for storage, the systemd
variables for ops). So a core never reads ``os.environ``, and a test states the environment it runs
under instead of patching the process's.

Only the daemon's variables live here. Those of the command-line tools (``WAVEMQ_ROUTER``,
``WAVEMQ_ENTITY``, ``WAVE_HOME``, ``WAVE_DEFAULT_*``) belong to the CLI layer. A variable that is set
but empty counts as unset, as it did when each module read its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["Environment"]

#: Attribute -> variable name. Every field of ``Environment`` except ``uid`` is one of these.
_VARIABLES: Final[Mapping[str, str]] = {
    "wavemq_state_dir": "WAVEMQ_STATE_DIR",
    "state_directory": "STATE_DIRECTORY",
    "xdg_state_home": "XDG_STATE_HOME",
    "home": "HOME",
    "runtime_directory": "RUNTIME_DIRECTORY",
    "xdg_runtime_dir": "XDG_RUNTIME_DIR",
    "journal_stream": "JOURNAL_STREAM",
    "notify_socket": "NOTIFY_SOCKET",
    "watchdog_usec": "WATCHDOG_USEC",
    "watchdog_pid": "WATCHDOG_PID",
    "debug_stall_s": "WAVEMQ_EDGE_DEBUG_STALL_S",
}


@dataclass(frozen=True, slots=True)
class Environment:
    """The daemon-side variables, as given (strings; ``""`` when unset). Build it with ``from_mapping``."""

    #: our own override of the state directory (tests and hand-run routers).
    wavemq_state_dir: str = ""
    #: systemd ``StateDirectory=``; may list several directories separated by ``:``.
    state_directory: str = ""
    xdg_state_home: str = ""
    #: home directory, the last resort for the state directory (``~/.local/state/wavemq-edge``).
    home: str = ""
    #: systemd ``RuntimeDirectory=`` (a tmpfs under /run); may list several separated by ``:``.
    runtime_directory: str = ""
    xdg_runtime_dir: str = ""
    #: systemd's ``device:inode`` of the journal stream on our stderr (ops/logging.py).
    journal_stream: str = ""
    #: systemd notify socket, watchdog period and the pid it is meant for (ops/systemd.py).
    notify_socket: str = ""
    watchdog_usec: str = ""
    watchdog_pid: str = ""
    #: test hook of ops/runtime.py: seconds SIGUSR2 stalls the loop for.
    debug_stall_s: str = ""
    #: the process's user id: names the fallback journal directory ``/dev/shm/wavemq-edge-<uid>``.
    uid: int = 0

    @classmethod
    def from_mapping(cls, env: Mapping[str, str], uid: int | None = None) -> Environment:
        """The one constructor: pick our variables out of ``env`` (``os.environ`` in the daemon)."""
        values = {attr: env.get(name, "") for attr, name in _VARIABLES.items()}
        return cls(**values, uid=os.getuid() if uid is None else uid)

    def to_mapping(self) -> dict[str, str]:
        """The variables that are set, under their own names: for the parts that take an ``env``
        mapping (``ops/systemd.py``, ``ops/runtime.py``)."""
        return {name: value for attr, name in _VARIABLES.items() if (value := getattr(self, attr))}

    @property
    def state_dir(self) -> Path:
        """Where data lives when a path is not given: ``$WAVEMQ_STATE_DIR``, systemd's ``$STATE_DIRECTORY``,
        ``$XDG_STATE_HOME/wavemq-edge``, else ``~/.local/state/wavemq-edge``."""
        if self.wavemq_state_dir:
            return Path(self.wavemq_state_dir)
        if self.state_directory:
            # systemd may pass several colon-separated directories; the first is ours.
            return Path(self.state_directory.split(":")[0])
        if self.xdg_state_home:
            return Path(self.xdg_state_home) / "wavemq-edge"
        home = Path(self.home) if self.home else Path.home()
        return home / ".local" / "state" / "wavemq-edge"

    @property
    def journal_dir(self) -> str:
        """The crash journal's directory when ``QueueConfig.journalDir`` is empty: ``$RUNTIME_DIRECTORY``
        (systemd ``RuntimeDirectory=``, a tmpfs under /run), else ``$XDG_RUNTIME_DIR/wavemq-edge``, else
        ``/dev/shm/wavemq-edge-<uid>``. All three are tmpfs on a normal Linux system, so the journal
        disappears on reboot, which is how a restart after a reboot is told apart from a process restart
        (plus the boot id recorded in each journal segment)."""
        if self.runtime_directory:
            return self.runtime_directory.split(":")[0]
        if self.xdg_runtime_dir:
            return os.path.join(self.xdg_runtime_dir, "wavemq-edge")
        return f"/dev/shm/wavemq-edge-{self.uid}"

