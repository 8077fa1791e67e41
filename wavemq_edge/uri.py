"""Resource URIs and patterns: parse, match, cover, intersect, and a subscription trie.

Model
-----
A resource URI is a ``/``-separated list of segments; each segment is one or more characters of
``[A-Za-z0-9-_.(),]`` (WAVE's ``AnalyzeSuffix`` alphabet). A *pattern* may also contain

* ``+`` -- exactly one segment, any value;
* ``*`` -- zero or more segments (at most one ``*`` per pattern), so ``a/*`` matches ``a`` too.

These are WAVE's resource semantics (``RestrictBy``, reference ``wave-security.md`` Appendix A). The
original WAVEMQ subscription tree gave a trailing ``*`` "one or more" semantics and let several ``*``
produce duplicate deliveries (``wavemq-behaviour.md`` §3.1); we use one rule everywhere, so what a proof
grants and what a subscription receives can never disagree.

``intersect(a, b)`` returns a single pattern that matches only URIs both ``a`` and ``b`` match (or
``None``). When both carry a ``*`` the exact intersection may need two patterns (``a/*`` and ``*/a``
both match ``a``); like WAVE's ``RestrictBy`` we return the one pattern that keeps both prefixes and both
suffixes apart. That under-approximates, which is the safe direction for authorization: a chain can only
narrow. ``covers(granted, required)`` holds iff ``intersect(required, granted) == required``.

This module is a hot path (every publish and every proof check) and is written for mypyc: plain
classes, tuples of ``str``, no dynamic attributes.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

__all__ = [
    "MAX_SEGMENTS",
    "MAX_URI_BYTES",
    "PLUS",
    "STAR",
    "Pattern",
    "SubscriptionTrie",
    "UriError",
    "covers",
    "format_pattern",
    "intersect",
    "matches",
    "parse_pattern",
    "parse_uri",
]

PLUS: Final = "+"
STAR: Final = "*"

#: Longest URI or pattern we accept, in bytes. WAVE caps visibility URIs at 20 cells; we allow longer
#: topics but bound the work one match can cause (a trie walk is O(segments * depth of one ``*``)).
MAX_URI_BYTES: Final = 1024
#: Most segments in one URI or pattern (see ``MAX_URI_BYTES``).
MAX_SEGMENTS: Final = 64

_SEGMENT_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.(),")

Pattern = tuple[str, ...]


class UriError(ValueError):
    """A URI or pattern is malformed; the message names the offending segment and the rule."""


def _split(text: object, what: str) -> list[str]:
    if not isinstance(text, str):
        raise UriError(f"{what} must be a string, not {type(text).__name__}")
    if text == "":
        raise UriError(f"{what} is empty")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_URI_BYTES:
        raise UriError(f"{what} of {len(text)} characters exceeds MAX_URI_BYTES={MAX_URI_BYTES}")
    segments = text.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise UriError(f"{what} {text!r} has {len(segments)} segments, more than MAX_SEGMENTS={MAX_SEGMENTS}")
    return segments


def _check_segment(text: str, index: int, segment: str, what: str) -> None:
    if segment == "":
        where = "leading" if index == 0 else "trailing" if text.endswith("/") else "inner"
        raise UriError(f"{what} {text!r} has an empty {where} segment at position {index}")
    for ch in segment:
        if ch not in _SEGMENT_CHARS:
            raise UriError(
                f"{what} {text!r}: segment {index} {segment!r} contains {ch!r}; "
                "segments use only A-Z a-z 0-9 - _ . ( ) ,"
            )


def parse_pattern(text: object) -> Pattern:
    """Parse a pattern (``+`` and at most one ``*`` allowed) into a tuple of segments. Takes any
    object (a decoded field may be anything): a non-string is a ``UriError``, also when compiled."""
    segments = _split(text, "pattern")
    assert isinstance(text, str)
    stars = 0
    for index, segment in enumerate(segments):
        if segment == STAR:
            stars += 1
            if stars > 1:
                raise UriError(f"pattern {text!r} has more than one '*' (at most one is allowed)")
        elif segment != PLUS:
            _check_segment(text, index, segment, "pattern")
    return tuple(segments)


def parse_uri(text: object) -> Pattern:
    """Parse a concrete URI (as published): no ``+`` or ``*`` segments; any object, like ``parse_pattern``."""
    segments = _split(text, "URI")
    assert isinstance(text, str)
    for index, segment in enumerate(segments):
        if segment in (PLUS, STAR):
            raise UriError(
                f"URI {text!r} has wildcard {segment!r} at segment {index}; a published URI names one resource"
            )
        _check_segment(text, index, segment, "URI")
    return tuple(segments)


def format_pattern(pattern: Pattern) -> str:
    return "/".join(pattern)


def _star_index(pattern: Pattern) -> int:
    for i, segment in enumerate(pattern):
        if segment == STAR:
            return i
    return -1


def _seg_match(pattern_segment: str, uri_segment: str) -> bool:
    return pattern_segment in (PLUS, uri_segment)


def matches(pattern: Pattern, uri: Pattern) -> bool:
    """True iff the concrete ``uri`` is matched by ``pattern``."""
    star = _star_index(pattern)
    if star < 0:
        if len(pattern) != len(uri):
            return False
        return all(not (p != PLUS and p != u) for p, u in zip(pattern, uri, strict=False))
    suffix_len = len(pattern) - star - 1
    if len(uri) < star + suffix_len:
        return False
    for i in range(star):
        if not _seg_match(pattern[i], uri[i]):
            return False
    offset = len(uri) - suffix_len
    return all(_seg_match(pattern[star + 1 + j], uri[offset + j]) for j in range(suffix_len))


def _seg_intersect(a: str, b: str) -> str | None:
    """The one segment matched by both ``a`` and ``b`` (neither is ``*``), or None."""
    if a == b:
        return a
    if a == PLUS:
        return b
    if b == PLUS:
        return a
    return None


def _zip_intersect(a: Pattern, b: Pattern) -> list[str] | None:
    out: list[str] = []
    for x, y in zip(a, b, strict=False):
        s = _seg_intersect(x, y)
        if s is None:
            return None
        out.append(s)
    return out


def intersect(a: Pattern, b: Pattern) -> Pattern | None:
    """A pattern matching only URIs matched by both ``a`` and ``b``; None if there is none.

    Symmetric: ``intersect(a, b) == intersect(b, a)``.
    """
    sa = _star_index(a)
    sb = _star_index(b)
    if sa < 0 and sb < 0:
        if len(a) != len(b):
            return None
        fixed = _zip_intersect(a, b)
        return None if fixed is None else tuple(fixed)
    if sa < 0 or sb < 0:
        # Exactly one has a star: the other fixes the length, so the result is exact.
        starred, fixed_p, s = (a, b, sa) if sa >= 0 else (b, a, sb)
        prefix = starred[:s]
        suffix = starred[s + 1 :]
        if len(prefix) + len(suffix) > len(fixed_p):
            return None
        head = _zip_intersect(prefix, fixed_p[: len(prefix)])
        if head is None:
            return None
        tail_start = len(fixed_p) - len(suffix)
        tail = _zip_intersect(suffix, fixed_p[tail_start:])
        if tail is None:
            return None
        middle = list(fixed_p[len(prefix) : tail_start])
        return tuple(head + middle + tail)
    # Both have a star: merge prefixes from the front and suffixes from the back; the longer side's
    # extra segments are absorbed by the other side's star.
    pa, pb = a[:sa], b[:sb]
    xa, xb = a[sa + 1 :], b[sb + 1 :]
    n = min(len(pa), len(pb))
    head = _zip_intersect(pa[:n], pb[:n])
    if head is None:
        return None
    head.extend(pa[n:] if len(pa) > n else pb[n:])
    m = min(len(xa), len(xb))
    tail = _zip_intersect(xa[len(xa) - m :], xb[len(xb) - m :])
    if tail is None:
        return None
    extra = xa[: len(xa) - m] if len(xa) > m else xb[: len(xb) - m]
    return tuple([*head, STAR, *list(extra), *tail])


def covers(granted: Pattern, required: Pattern) -> bool:
    """True iff every URI matched by ``required`` is matched by ``granted`` (WAVE ``IsSubsetOf``)."""
    return intersect(required, granted) == required


T = TypeVar("T")

#: Bound on cached match results; past it the cache is cleared (nats ``slCacheMax`` precedent: a cache
#: that cannot grow without bound, rebuilt from the trie in O(depth) per miss).
MATCH_CACHE_MAX: Final = 1024


class _Node(Generic[T]):
    __slots__ = ("children", "plus", "star", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.plus: _Node[T] | None = None
        self.star: _Node[T] | None = None
        self.values: set[T] = set()

    def is_empty(self) -> bool:
        return not self.values and not self.children and self.plus is None and self.star is None


class SubscriptionTrie(Generic[T]):
    """Segment trie of patterns -> values, with separate ``+`` and ``*`` children (nats ``sublist``).

    ``match(uri)`` returns each value whose pattern matches ``uri`` exactly once. Results are cached in a
    bounded dict that is cleared whenever the trie changes (generation counter) or grows past
    ``MATCH_CACHE_MAX``; ``use_cache=False`` disables it, so tests run both ways.
    """

    __slots__ = ("_cache", "_count", "_generation", "_root", "_use_cache")

    def __init__(self, use_cache: bool = True) -> None:
        self._root: _Node[T] = _Node()
        self._cache: dict[Pattern, frozenset[T]] = {}
        self._use_cache = use_cache
        self._generation = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def generation(self) -> int:
        return self._generation

    def _touch(self) -> None:
        self._generation += 1
        self._cache.clear()

    def insert(self, pattern: Pattern, value: T) -> bool:
        """Register ``value`` under ``pattern``; False if it was already there."""
        node = self._root
        for segment in pattern:
            if segment == PLUS:
                if node.plus is None:
                    node.plus = _Node()
                node = node.plus
            elif segment == STAR:
                if node.star is None:
                    node.star = _Node()
                node = node.star
            else:
                nxt = node.children.get(segment)
                if nxt is None:
                    nxt = _Node()
                    node.children[segment] = nxt
                node = nxt
        if value in node.values:
            return False
        node.values.add(value)
        self._count += 1
        self._touch()
        return True

    def remove(self, pattern: Pattern, value: T) -> bool:
        """Unregister ``value`` from ``pattern``; prunes empty nodes. False if it was not there."""
        path: list[tuple[_Node[T], str]] = []
        node: _Node[T] | None = self._root
        for segment in pattern:
            assert node is not None
            path.append((node, segment))
            if segment == PLUS:
                node = node.plus
            elif segment == STAR:
                node = node.star
            else:
                node = node.children.get(segment)
            if node is None:
                return False
        assert node is not None
        if value not in node.values:
            return False
        node.values.discard(value)
        self._count -= 1
        child = node
        for parent, segment in reversed(path):
            if not child.is_empty():
                break
            if segment == PLUS:
                parent.plus = None
            elif segment == STAR:
                parent.star = None
            else:
                del parent.children[segment]
            child = parent
        self._touch()
        return True

    def match(self, uri: Pattern) -> frozenset[T]:
        if self._use_cache:
            hit = self._cache.get(uri)
            if hit is not None:
                return hit
        out: set[T] = set()
        self._walk(self._root, uri, 0, out, False)
        result = frozenset(out)
        if self._use_cache:
            if len(self._cache) >= MATCH_CACHE_MAX:
                self._cache.clear()
            self._cache[uri] = result
        return result

    def _walk(self, node: _Node[T], uri: Pattern, i: int, out: set[T], after_star: bool) -> None:
        n = len(uri)
        if i == n:
            out.update(node.values)
        else:
            child = node.children.get(uri[i])
            if child is not None:
                self._walk(child, uri, i + 1, out, after_star)
            if node.plus is not None:
                self._walk(node.plus, uri, i + 1, out, after_star)
        if node.star is not None and not after_star:
            # ``*`` consumes zero or more segments; at most one star per pattern, so below it we never
            # branch on a star again and the walk stays O(len(uri)^2) in the worst case.
            for j in range(i, n + 1):
                self._walk(node.star, uri, j, out, True)

    def patterns(self) -> list[tuple[Pattern, T]]:
        """Every (pattern, value) pair, for status output and tests."""
        out: list[tuple[Pattern, T]] = []
        self._collect(self._root, [], out)
        return out

    def _collect(self, node: _Node[T], prefix: list[str], out: list[tuple[Pattern, T]]) -> None:
        for value in node.values:
            out.append((tuple(prefix), value))
        for segment, child in node.children.items():
            self._collect(child, [*prefix, segment], out)
        if node.plus is not None:
            self._collect(node.plus, [*prefix, PLUS], out)
        if node.star is not None:
            self._collect(node.star, [*prefix, STAR], out)
