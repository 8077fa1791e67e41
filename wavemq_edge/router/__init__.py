"""The routing core, the agent session and the trunk state machines (sans-I/O)."""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .core import RouterCore
    from .disk_guard import DiskGuard, DiskState, OnDiskFull
    from .errors import ErrorCode, RouterError, code_for_reason
    from .fanout import PublishResult
    from .hooks import NO_TIERING, QueryForwarder, QueryReply, SubscriptionChange, TieringHooks
    from .lifecycle import SUBSCRIPTION_RECORDS, peer_subscription_key, subscription_key
    from .options import RouterOptions
    from .query import PersistedMessages, QueryAnswer
    from .session import PROTOCOL_VERSION, AgentSession, SessionState
    from .status import CoreStatus, RouterCounters, core_reply
    from .subscription import Consumer, RouterSubscription
    from .tiering import trunk_queue_id
else:
    from ..lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".core": ("RouterCore",),
        ".disk_guard": ("DiskGuard", "DiskState", "OnDiskFull"),
        ".errors": ("ErrorCode", "RouterError", "code_for_reason"),
        ".fanout": ("PublishResult",),
        ".hooks": ("NO_TIERING", "QueryForwarder", "QueryReply", "SubscriptionChange", "TieringHooks"),
        ".lifecycle": ("SUBSCRIPTION_RECORDS", "peer_subscription_key", "subscription_key"),
        ".options": ("RouterOptions",),
        ".query": ("PersistedMessages", "QueryAnswer"),
        ".session": ("PROTOCOL_VERSION", "AgentSession", "SessionState"),
        ".status": ("CoreStatus", "RouterCounters", "core_reply"),
        ".subscription": ("Consumer", "RouterSubscription"),
        ".tiering": ("trunk_queue_id",),
    })

__all__ = [
    "NO_TIERING",
    "PROTOCOL_VERSION",
    "SUBSCRIPTION_RECORDS",
    "AgentSession",
    "Consumer",
    "CoreStatus",
    "DiskGuard",
    "DiskState",
    "ErrorCode",
    "OnDiskFull",
    "PersistedMessages",
    "PublishResult",
    "QueryAnswer",
    "QueryForwarder",
    "QueryReply",
    "RouterCore",
    "RouterCounters",
    "RouterError",
    "RouterOptions",
    "RouterSubscription",
    "SessionState",
    "SubscriptionChange",
    "TieringHooks",
    "code_for_reason",
    "core_reply",
    "peer_subscription_key",
    "subscription_key",
    "trunk_queue_id",
]
