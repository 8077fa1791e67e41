"""A bounded least-recently-used map: the one cache shape the router uses everywhere.

Caches of proofs, entities, per-connection proofs and recently seen ids all want the same thing: a
dict that remembers the order of use and forgets the oldest entry past a bound. ``OrderedDict`` does
it in a few lines, and those few lines were written out five times with small differences (whether a
read refreshes the entry; whether the bound is checked before or after the insert). This is the one
copy: a read with ``get`` refreshes, ``peek`` does not, and ``put`` evicts after inserting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    __slots__ = ("_items", "evicted", "max_entries")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"an LRU needs room for at least one entry, not {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[K, V] = OrderedDict()
        #: entries forgotten at the bound since the cache was made
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def items(self) -> Iterator[tuple[K, V]]:
        """Oldest first."""
        return iter(self._items.items())

    def get(self, key: K) -> V | None:
        """The value, refreshed as most recently used; None when absent."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """The value without refreshing it."""
        return self._items.get(key)

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Insert or refresh; returns the entries evicted to stay within the bound (oldest first)."""
        self._items[key] = value
        self._items.move_to_end(key)
        evicted: list[tuple[K, V]] = []
        while len(self._items) > self.max_entries:
            evicted.append(self._items.popitem(last=False))
        self.evicted += len(evicted)
        return evicted

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()
