"""uri.py: parsing, matching, RestrictBy vectors, properties, and the subscription trie."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavemq_edge.uri import (
    MAX_SEGMENTS,
    SubscriptionTrie,
    UriError,
    covers,
    format_pattern,
    intersect,
    matches,
    parse_pattern,
    parse_uri,
)

# wave-security.md Appendix A: (from, by, result or None).
RESTRICT_BY_VECTORS = [
    ("a/b/c", "a/b/c", "a/b/c"),
    ("a/b/c", "a/*", "a/b/c"),
    ("a/*", "a/b/c", "a/b/c"),
    ("a/*", "a/b/*", "a/b/*"),
    ("a/b/*", "a/*", "a/b/*"),
    ("*", "a/b", "a/b"),
    ("a/b", "*", "a/b"),
    ("a/+/c", "a/b/c", "a/b/c"),
    ("a/b/c", "a/+/c", "a/b/c"),
    ("a/+", "a/b/*", "a/b"),
    ("a/b", "a/b/*", "a/b"),
    ("a/b/*", "a/b", "a/b"),
    ("a/b", "a/c", None),
    ("a/*/z", "a/b/*", "a/b/*/z"),
    ("a/*", "*/z", "a/*/z"),
    ("a", "a/*", "a"),
    ("a/*", "a", "a"),
    ("a/b/c", "a/b", None),
    ("a/b", "a/b/c", None),
    ("+", "a", "a"),
    ("a/+/+", "a/b/*", "a/b/+"),
    ("*", "*", "*"),
    ("a/*", "a/*", "a/*"),
]


@pytest.mark.parametrize(("frm", "by", "expected"), RESTRICT_BY_VECTORS,
                         ids=[f"v{i + 1}" for i in range(len(RESTRICT_BY_VECTORS))])
def test_restrict_by_vectors(frm: str, by: str, expected: str | None) -> None:
    assert len(RESTRICT_BY_VECTORS) == 23
    got = intersect(parse_pattern(frm), parse_pattern(by))
    assert got == (None if expected is None else parse_pattern(expected))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("a//b", "empty inner segment"),
        ("/a", "empty leading segment"),
        ("a/", "empty trailing segment"),
        ("a/*/b/*", "more than one '*'"),
        ("a/b c", "contains ' '"),
        ("a/ü", "contains 'ü'"),
        ("a/#", "contains '#'"),
        ("/".join(["x"] * (MAX_SEGMENTS + 1)), "MAX_SEGMENTS"),
        ("x" * 2000, "MAX_URI_BYTES"),
    ],
)
def test_bad_patterns_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(UriError, match=None) as info:
        parse_pattern(text)
    assert fragment in str(info.value)


def test_publish_uri_refuses_wildcards() -> None:
    with pytest.raises(UriError, match="wildcard '\\+' at segment 1"):
        parse_uri("a/+/c")
    with pytest.raises(UriError, match="wildcard"):
        parse_uri("*")
    assert parse_uri("a/b-c/d_e.f(1),2") == ("a", "b-c", "d_e.f(1),2")


def test_non_string_is_refused() -> None:
    with pytest.raises(UriError, match="must be a string"):
        parse_pattern(42)


@pytest.mark.parametrize(
    ("pattern", "uri", "expected"),
    [
        ("a/*", "a", True),  # * is zero or more, everywhere (WAVE semantics)
        ("a/*", "a/b/c", True),
        ("a/*/z", "a/z", True),
        ("a/*/z", "a/x/y/z", True),
        ("a/*/z", "a/x/y", False),
        ("a/+", "a", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("+/+", "a/b", True),
        ("*", "x", True),
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/*/b/+", "a/b/c", True),
        ("a/*/b/+", "a/x/b", False),
    ],
)
def test_matches(pattern: str, uri: str, expected: bool) -> None:
    assert matches(parse_pattern(pattern), parse_uri(uri)) is expected


# --- properties -------------------------------------------------------------------------------------

SEGS = st.sampled_from(["a", "b", "c"])
PSEGS = st.sampled_from(["a", "b", "c", "+"])


@st.composite
def patterns(draw: st.DrawFn) -> tuple[str, ...]:
    body = draw(st.lists(PSEGS, min_size=0, max_size=4))
    if draw(st.booleans()):
        body.insert(draw(st.integers(0, len(body))), "*")
    if not body:
        body = [draw(PSEGS)]
    return tuple(body)


uris = st.lists(SEGS, min_size=1, max_size=6).map(tuple)


def all_uris(max_len: int = 6) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for n in range(1, max_len + 1):
        out.extend(itertools.product("abc", repeat=n))
    return out


ALL = all_uris(5)


@given(patterns(), uris)
def test_covers_agrees_with_matches_on_concrete_uris(pattern: tuple[str, ...], uri: tuple[str, ...]) -> None:
    assert covers(pattern, uri) == matches(pattern, uri)


@given(patterns(), patterns())
def test_covers_is_sound(granted: tuple[str, ...], required: tuple[str, ...]) -> None:
    """If covers(g, r), every URI r matches is matched by g (checked exhaustively on short URIs)."""
    if covers(granted, required):
        for uri in ALL:
            if matches(required, uri):
                assert matches(granted, uri), (granted, required, uri)


@given(patterns(), patterns())
def test_intersect_is_commutative_in_what_it_matches(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    ab, ba = intersect(a, b), intersect(b, a)
    assert (ab is None) == (ba is None)
    if ab is not None and ba is not None:
        for uri in ALL:
            assert matches(ab, uri) == matches(ba, uri)


@given(patterns(), patterns())
def test_intersect_only_narrows(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    """Everything the intersection matches is matched by both sides (never widens a grant)."""
    result = intersect(a, b)
    if result is not None:
        assert result.count("*") <= 1
        for uri in ALL:
            if matches(result, uri):
                assert matches(a, uri) and matches(b, uri)


@given(patterns())
def test_pattern_round_trips_through_text(p: tuple[str, ...]) -> None:
    assert parse_pattern(format_pattern(p)) == p
    assert covers(p, p)


# --- subscription trie ------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "nocache"])
@given(subs=st.lists(patterns(), min_size=0, max_size=12), probes=st.lists(uris, min_size=1, max_size=10),
       removals=st.lists(st.integers(0, 11), max_size=4))
def test_trie_matches_brute_force(use_cache: bool, subs: list[tuple[str, ...]], probes: list[tuple[str, ...]],
                                  removals: list[int]) -> None:
    trie: SubscriptionTrie[int] = SubscriptionTrie(use_cache=use_cache)
    live: dict[int, tuple[str, ...]] = {}
    for i, p in enumerate(subs):
        assert trie.insert(p, i)
        live[i] = p
    for probe in probes:  # warm the cache, then mutate, so a stale cache would show
        trie.match(probe)
    for r in removals:
        if r in live:
            assert trie.remove(live.pop(r), r)
            assert not trie.remove(subs[r], r)
    assert len(trie) == len(live)
    for probe in probes:
        expected = {i for i, p in live.items() if matches(p, probe)}
        assert trie.match(probe) == expected


def test_trie_delivers_once_even_when_several_paths_match() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.insert(parse_pattern("a/*/b"), "s1")  # * can consume 0 or 1 segments of a/b/b
    trie.insert(parse_pattern("*"), "s2")
    assert trie.match(("a", "b", "b")) == {"s1", "s2"}
    assert sorted(trie.patterns()) == [(("*",), "s2"), (("a", "*", "b"), "s1")]
    assert trie.insert(parse_pattern("*"), "s2") is False


def test_trie_prunes_empty_nodes() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.insert(parse_pattern("a/+/c/*"), "x")
    trie.remove(parse_pattern("a/+/c/*"), "x")
    assert trie.patterns() == []
    assert trie.match(("a", "b", "c")) == frozenset()
