"""MQTT topics <-> resource URIs in the user's namespace.

* A topic name (PUBLISH) is a URI as it stands: levels are URI segments, so each must be non-empty and
  made of ``[A-Za-z0-9-_.(),]`` (``uri.py``); ``+`` and ``#`` are wildcards and refused in a name.
* A topic filter (SUBSCRIBE) maps ``+`` to ``+`` and a trailing ``#`` to ``*`` (both mean "this level
  and everything under it, the parent included", MQTT §4.7.1.2 and WAVE's zero-or-more ``*``).
* Refused (5.0 ``TOPIC_NAME_INVALID`` 0x90 / ``TOPIC_FILTER_INVALID`` 0x8F; 3.1.1: the connection is
  closed, or the SUBACK says 0x80): an empty level (``a//b``, a leading or trailing ``/``), a character
  a URI cannot hold (spaces, ``$``, ``:``, non-ASCII ...), ``#`` anywhere but last, a wildcard inside
  a level (``a+``), and more levels or bytes than ``uri.MAX_SEGMENTS`` / ``uri.MAX_URI_BYTES``. So
  ``$SYS/...`` and shared subscriptions (``$share/...``) are refused too (README says why).
"""

from __future__ import annotations

from ..uri import Pattern, UriError, format_pattern, parse_pattern, parse_uri

__all__ = ["TopicError", "filter_to_pattern", "topic_to_uri"]


class TopicError(ValueError):
    """A topic the router cannot map to a URI; the text says which level and why."""


def topic_to_uri(topic: str) -> str:
    if "+" in topic or "#" in topic:
        raise TopicError(f"topic name {topic!r} contains a wildcard")
    try:
        parse_uri(topic)
    except UriError as exc:
        raise TopicError(f"topic name {topic!r}: {exc}") from None
    return topic


def filter_to_pattern(topic_filter: str) -> Pattern:
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#" and i != len(levels) - 1:
            raise TopicError(f"topic filter {topic_filter!r}: '#' is allowed only as the last level")
        if level == "*":
            raise TopicError(f"topic filter {topic_filter!r}: '*' is not an MQTT wildcard (use '#')")
    if levels[-1] == "#":
        levels[-1] = "*"
    try:
        return parse_pattern("/".join(levels))
    except UriError as exc:
        raise TopicError(f"topic filter {topic_filter!r}: {exc}") from None


def pattern_text(pattern: Pattern) -> str:
    return format_pattern(pattern)
