"""The subscription registry: every live subscription, indexed for matching, by owner, and by key.

A subscription is registered under the trie topic ``(namespace, *pattern)``: the namespace is the first
segment, so a subscription never sees another namespace's messages. Besides the trie the registry keeps
``(entity, identifier) -> keys`` (a signed unsubscribe names the identifier, and ends that identifier in
every namespace) and the *ready set*: subscriptions with something to hand out, which delivery drains.

Pure bookkeeping: no store, no clock. The lifecycle (create, resume, end) lives in ``lifecycle.py``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from ..uri import Pattern, SubscriptionTrie
from ..wave import format_id
from .subscription import RouterSubscription

__all__ = ["SubscriptionRegistry"]

#: Publish destinations whose matches are remembered between subscription changes (then forgotten all).
MATCH_CACHE_MAX: Final = 1024


#: The printable namespace of the trie's first segment, remembered: a router serves a few namespaces
#: and formatting one costs about a microsecond per message (bounded: namespaces arrive in requests).
_namespace_segment: Final = lru_cache(maxsize=1024)(format_id)


def _topic(namespace: bytes, parts: Pattern) -> Pattern:
    return (_namespace_segment(namespace), *parts)


class SubscriptionRegistry:
    def __init__(self) -> None:
        self._trie: SubscriptionTrie[RouterSubscription] = SubscriptionTrie()
        self._subs: dict[str, RouterSubscription] = {}
        self._by_owner: dict[tuple[bytes, str], set[str]] = {}
        self._ready: set[RouterSubscription] = set()
        #: (namespace, resource) -> matching subscriptions, cleared whenever a subscription changes
        self._matches: dict[tuple[bytes, Pattern], tuple[RouterSubscription, ...]] = {}

    def __len__(self) -> int:
        return len(self._subs)

    def __contains__(self, sub: RouterSubscription) -> bool:
        return self._subs.get(sub.key) is sub

    def get(self, key: str) -> RouterSubscription | None:
        return self._subs.get(key)

    def all(self) -> list[RouterSubscription]:
        return list(self._subs.values())

    def durable_count(self) -> int:
        return sum(1 for s in self._subs.values() if not s.ephemeral)

    def owned(self, entity: bytes, sub_id: str) -> list[RouterSubscription]:
        return [self._subs[k] for k in self._by_owner.get((entity, sub_id), ())]

    def matching(self, namespace: bytes, resource: Pattern) -> list[RouterSubscription]:
        """The subscriptions whose pattern matches; remembered until the next change of subscriptions (a
        publish asks twice: the disk check counts them, fan-out queues to them; a sensor repeats URIs)."""
        key = (namespace, resource)
        found = self._matches.get(key)
        if found is None:
            if len(self._matches) >= MATCH_CACHE_MAX:
                self._matches.clear()
            found = self._matches[key] = tuple(self._trie.match(_topic(namespace, resource)))
        return list(found)

    def add(self, sub: RouterSubscription) -> None:
        self._matches.clear()
        self._subs[sub.key] = sub
        self._by_owner.setdefault((sub.entity, sub.sub_id), set()).add(sub.key)
        self._trie.insert(_topic(sub.namespace, sub.pattern), sub)

    def remove(self, sub: RouterSubscription) -> bool:
        """Forget ``sub``; False if it was not registered."""
        if self._subs.pop(sub.key, None) is None:
            return False
        self._matches.clear()
        owner = (sub.entity, sub.sub_id)
        keys = self._by_owner.get(owner)
        if keys is not None:
            keys.discard(sub.key)
            if not keys:
                del self._by_owner[owner]
        self._trie.remove(_topic(sub.namespace, sub.pattern), sub)
        self._ready.discard(sub)
        return True

    def repattern(self, sub: RouterSubscription, pattern: Pattern) -> None:
        """Move ``sub`` to a new pattern (WAVEMQ kept the old tree entry on resume: §12 row 15)."""
        if pattern != sub.pattern:
            self._matches.clear()
            self._trie.remove(_topic(sub.namespace, sub.pattern), sub)
            sub.pattern = pattern
            self._trie.insert(_topic(sub.namespace, pattern), sub)

    # ------------------------------------------------------------------ ready set

    def mark_ready(self, sub: RouterSubscription) -> None:
        if sub.key in self._subs:
            self._ready.add(sub)

    def pop_ready(self) -> RouterSubscription | None:
        return self._ready.pop() if self._ready else None

    # ------------------------------------------------------------------ expiry

    def earliest_expiry(self) -> float | None:
        """Wall-clock seconds of the first subscription expiry."""
        return min((s.expiry for s in self._subs.values()), default=None)

    def expired(self, wall: float) -> list[RouterSubscription]:
        return [s for s in self._subs.values() if s.expiry <= wall]
