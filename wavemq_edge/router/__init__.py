"""The routing core, the agent session and the trunk state machines (sans-I/O)."""

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
