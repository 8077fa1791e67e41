"""The admission policy of agent connections (net/slots.py), driven without sockets: a handshake pool
with sshd-style early drop, per-address caps, eviction of never-authorised connections oldest first."""

from __future__ import annotations

import random

import pytest

from wavemq_edge.net.slots import Admitted, Phase, RefusalReason, Refused, SlotLimits, SlotTable


def limits(**kw: int) -> SlotLimits:
    base = dict(max_connections=8, max_per_address=8, max_handshakes=8, handshake_drop_start=8,
                handshake_drop_rate=30, max_handshakes_per_address=8)
    base.update(kw)
    return SlotLimits(**base)


def admitted(result: Admitted[int] | Refused) -> tuple[int, ...]:
    assert isinstance(result, Admitted), result
    return result.evict


def refused(result: Admitted[int] | Refused) -> RefusalReason:
    assert isinstance(result, Refused), result
    return result.reason


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="handshake_drop_start"):
        limits(handshake_drop_start=9)
    with pytest.raises(ValueError, match="percentage"):
        limits(handshake_drop_rate=101)
    with pytest.raises(ValueError, match=">= 1"):
        limits(max_per_address=0)


def test_full_table_evicts_the_oldest_never_authorised_connection() -> None:
    t: SlotTable[int] = SlotTable(limits(max_connections=3))
    for k in range(3):
        assert admitted(t.admit(k, f"10.0.0.{k}")) == ()
    t.authenticated(0)
    t.authorised(0)  # did real work: never evicted
    t.authenticated(1)  # idle after AUTH: evictable, and older than 2
    assert admitted(t.admit(3, "10.0.0.9")) == (1,)
    assert 1 not in t and len(t) == 3 and t.evicted["max_connections"] == 1
    assert admitted(t.admit(4, "10.0.0.9")) == (2,)  # a handshake still in progress is evictable too
    assert t.handshakes == 2  # 3 and 4
    t.release(2)  # the evicted transport closing later releases nothing twice
    assert len(t) == 3


def test_refused_when_every_connection_has_done_real_work() -> None:
    t: SlotTable[int] = SlotTable(limits(max_connections=2))
    for k in range(2):
        admitted(t.admit(k, "10.0.0.1"))
        t.authenticated(k)
        t.authorised(k)
    result = t.admit(2, "10.0.0.2")
    assert refused(result) is RefusalReason.MAX_CONNECTIONS
    assert isinstance(result, Refused) and "LimitsConfig.maxConnections=2" in result.message
    assert t.refused["max_connections"] == 1 and 2 not in t


def test_per_address_cap_evicts_that_address_only() -> None:
    t: SlotTable[int] = SlotTable(limits(max_per_address=2))
    admitted(t.admit(0, "10.0.0.1"))
    admitted(t.admit(1, "10.0.0.2"))  # older, but another address
    admitted(t.admit(2, "10.0.0.2"))
    t.authorised(1)
    assert admitted(t.admit(3, "10.0.0.2")) == (2,)
    assert t.per_address("10.0.0.2") == 2 and t.evicted["per_address"] == 1
    t.authorised(3)
    assert refused(t.admit(4, "10.0.0.2")) is RefusalReason.PER_ADDRESS
    assert t.phase(0) is Phase.HANDSHAKE


def test_handshakes_per_address_keep_one_host_below_the_early_drop() -> None:
    t: SlotTable[int] = SlotTable(limits(max_connections=64, max_per_address=64, max_handshakes=16,
                                         handshake_drop_start=8, max_handshakes_per_address=4),
                                  random=lambda: 0.0)  # any early drop would refuse
    for k in range(4):
        admitted(t.admit(k, "10.0.0.66"))
    assert refused(t.admit(4, "10.0.0.66")) is RefusalReason.HANDSHAKES_PER_ADDRESS
    assert t.handshakes == 4
    admitted(t.admit(5, "10.0.0.1"))  # another host gets in: 4 < start
    t.authenticated(0)
    admitted(t.admit(6, "10.0.0.66"))  # a handshake done frees a handshake slot of that host


def test_early_drop_follows_sshd_max_startups() -> None:
    # start=4, rate=30, full=8: with n in progress, refused with probability 30 + 70 * (n - 4) / 4 %.
    lim = limits(max_connections=100, max_per_address=100, max_handshakes=8, handshake_drop_start=4,
                 handshake_drop_rate=30, max_handshakes_per_address=100)
    draw = [0.29]
    t: SlotTable[int] = SlotTable(lim, random=lambda: draw[0])
    for k in range(4):
        admitted(t.admit(k, "10.0.0.1"))
    assert refused(t.admit(10, "10.0.0.2")) is RefusalReason.HANDSHAKE_EARLY_DROP  # 29 < 30
    draw[0] = 0.31
    admitted(t.admit(11, "10.0.0.2"))  # 31 >= 30: admitted, 5 in progress now
    draw[0] = 0.47
    assert refused(t.admit(12, "10.0.0.2")) is RefusalReason.HANDSHAKE_EARLY_DROP  # 5: 47.5 %
    draw[0] = 0.48
    admitted(t.admit(13, "10.0.0.2"))
    draw[0] = 0.999  # below 100 %: admitted until full
    for k in (20, 21):
        admitted(t.admit(k, "10.0.0.3"))
    assert t.handshakes == 8
    assert refused(t.admit(30, "10.0.0.4")) is RefusalReason.HANDSHAKES_FULL
    assert t.refused["handshake_early_drop"] == 2 and t.refused["handshakes_full"] == 1


def test_early_drop_rate_measured() -> None:
    lim = limits(max_connections=100, max_per_address=100, max_handshakes=10, handshake_drop_start=2,
                 handshake_drop_rate=20, max_handshakes_per_address=100)
    rng = random.Random(7)
    t: SlotTable[int] = SlotTable(lim, random=rng.random)
    admitted(t.admit(0, "10.0.0.1"))
    admitted(t.admit(1, "10.0.0.1"))  # 2 in progress: p = 20 %
    drops = 0
    for k in range(2, 2002):
        result = t.admit(k, "10.0.0.2")
        if isinstance(result, Refused):
            drops += 1
        else:
            t.release(k)
    assert 330 < drops < 470  # 20 % of 2000 = 400


def test_unix_socket_connections_skip_address_and_handshake_bounds() -> None:
    t: SlotTable[int] = SlotTable(limits(max_connections=3, max_handshakes=1, handshake_drop_start=1,
                                         max_handshakes_per_address=1, max_per_address=1))
    admitted(t.admit(0, "10.0.0.1"))
    assert refused(t.admit(1, "10.0.0.2")) is RefusalReason.HANDSHAKES_FULL
    admitted(t.admit(2, None))
    admitted(t.admit(3, None))
    assert t.handshakes == 1
    assert admitted(t.admit(4, None)) == (0,)  # the global pool still evicts for them


def test_counts_balance_after_every_path() -> None:
    rng = random.Random(3)
    t: SlotTable[int] = SlotTable(limits(max_connections=20, max_per_address=6, max_handshakes=10,
                                         handshake_drop_start=5, max_handshakes_per_address=4), random=rng.random)
    live: set[int] = set()
    for k in range(3000):
        op = rng.random()
        if op < 0.5:
            result = t.admit(k, f"10.0.0.{rng.randrange(6)}")
            if isinstance(result, Admitted):
                live.difference_update(result.evict)
                live.add(k)
        elif live:
            victim = rng.choice(sorted(live))
            if op < 0.7:
                t.authenticated(victim)
            elif op < 0.8:
                t.authorised(victim)
            else:
                t.release(victim)
                live.discard(victim)
        assert len(t) == len(live) <= 20
        assert t.handshakes == sum(1 for key in live if t.phase(key) is Phase.HANDSHAKE) <= 10
        for a in range(6):
            assert t.per_address(f"10.0.0.{a}") <= 6
    for key in list(live):
        t.release(key)
    assert len(t) == 0 and t.handshakes == 0 and not t._per_address and not t._evictable_at
