"""The daemon shell: start-up, serve, ordered bounded shutdown, and the one place the configuration is
turned into each part's options (``derive.py``)."""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .shell import Server
    from .startup import StartupError
else:
    from ..lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".shell": ("Server",),
        ".startup": ("StartupError",),
    })

__all__ = ["Server", "StartupError"]
