"""The routing core and the agent session state machine (sans-I/O)."""

from .core import (
    SUBSCRIPTION_RECORDS,
    PersistStore,
    PublishResult,
    QueryResult,
    RouterCore,
    RouterCounters,
    RouterOptions,
)
from .errors import ErrorCode, RouterError, code_for_reason
from .session import PROTOCOL_VERSION, AgentSession, SessionState
from .subscription import Consumer, Subscription

__all__ = [
    "PROTOCOL_VERSION",
    "SUBSCRIPTION_RECORDS",
    "AgentSession",
    "Consumer",
    "ErrorCode",
    "PersistStore",
    "PublishResult",
    "QueryResult",
    "RouterCore",
    "RouterCounters",
    "RouterError",
    "RouterOptions",
    "SessionState",
    "Subscription",
    "code_for_reason",
]
