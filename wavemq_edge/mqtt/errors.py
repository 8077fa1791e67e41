"""MQTT reason codes (5.0 §2.4, the 3.1.1 CONNACK return codes) and the codec's one error type."""

from __future__ import annotations

from enum import IntEnum

from ..wire.codes import ErrorCode

__all__ = ["CloseConnection", "ConnackCode311", "MqttCodecError", "Reason", "reason_for_refusal"]


class Reason(IntEnum):
    """MQTT 5.0 reason codes (§2.4). The ones below 0x80 are successes."""

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    REAUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class ConnackCode311(IntEnum):
    """MQTT 3.1.1 CONNACK return codes (§3.2.2.3)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USER_NAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class MqttCodecError(Exception):
    """The peer sent bytes that are not a valid MQTT packet. ``reason`` is the 5.0 reason code to close
    with (``MALFORMED_PACKET``, ``PROTOCOL_ERROR``, ``PACKET_TOO_LARGE`` or
    ``UNSUPPORTED_PROTOCOL_VERSION``); a 3.1.1 connection is simply closed (§4.8 of 3.1.1)."""

    def __init__(self, reason: Reason, message: str, protocol_level: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        #: the level a refused CONNECT asked for, so the CONNACK is in the device's version
        self.protocol_level = protocol_level


class CloseConnection(Exception):
    """Raised inside the session: close this connection with ``reason`` (5.0 DISCONNECT or CONNACK)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: The router's refusal codes (``REFUSED`` to an agent) as the 5.0 reason a device is given.
_BY_CODE: dict[int, Reason] = {
    ErrorCode.PERMISSION_DENIED: Reason.NOT_AUTHORIZED, ErrorCode.WRONG_SUBJECT: Reason.NOT_AUTHORIZED,
    ErrorCode.WRONG_NAMESPACE: Reason.NOT_AUTHORIZED, ErrorCode.NO_PROOF: Reason.NOT_AUTHORIZED,
    ErrorCode.PROOF_INVALID: Reason.NOT_AUTHORIZED, ErrorCode.PROOF_EXPIRED: Reason.NOT_AUTHORIZED,
    ErrorCode.PROOF_REVOKED: Reason.NOT_AUTHORIZED, ErrorCode.UNKNOWN_ENTITY: Reason.NOT_AUTHORIZED,
    ErrorCode.REVOCATION_STALE: Reason.NOT_AUTHORIZED, ErrorCode.BAD_URI: Reason.TOPIC_NAME_INVALID,
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: Reason.QUOTA_EXCEEDED, ErrorCode.STORAGE_UNAVAILABLE: Reason.QUOTA_EXCEEDED,
    ErrorCode.STORAGE_FULL: Reason.QUOTA_EXCEEDED,
}


def reason_for_refusal(code: int) -> Reason:
    """A ``RouterError``'s code as a 5.0 reason: every grant problem is ``NOT_AUTHORIZED`` (0x87)."""
    return _BY_CODE.get(code, Reason.IMPLEMENTATION_SPECIFIC_ERROR)
