"""Operations: what keeps the router safe to leave alone on a gateway.

* ``logging.py``: the one place logging is configured (journald, TTY, files); ``RateLimitedLog``.
* ``budget.py``: the RAM/disk budget policy and the start-up fit check (pure).
* ``systemd.py``: sd_notify messages and the watchdog health decision (pure) plus the datagram sender.
* ``metrics.py``: Prometheus text exposition (pure); ``status_view.py``: the human ``status`` text.
* ``state.py``: the narrow, read-only ``ServerState`` ops gets, and the three ``ServerControls`` it may use.
* ``status.py``: one ``StatusSnapshot`` rendered as STATUS reply, ``STATUS=`` line and Prometheus families.
* ``runtime.py``: the glue the server drives (psutil sampling, notify/watchdog/budget tasks).

Only the logging set-up is imported here, so ``wavemq-edge`` client commands do not load psutil.
"""

from .logging import configure_logging

__all__ = ["configure_logging"]
