"""Tiering with real processes: a designated router (DR), site routers, and a fault proxy between them.

Each scenario asserts nothing lost within bounds, no duplicates at the subscriber, per-publisher order.
``WAVEMQ_TIER_MESSAGES`` and ``WAVEMQ_TIER_OUTAGE_S`` scale the outage scenario (defaults keep CI short).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tier_helpers import (
    Router,
    Tier,
    another_publisher,
    client,
    collect,
    make_tier,
    subscriptions,
    uplink_reconnects,
    wv,
)
from waiting import await_until, wait_until

from wavemq_edge.client import Client, Subscription
from wavemq_edge.wave import format_id, load_entity

MESSAGES = int(os.environ.get("WAVEMQ_TIER_MESSAGES", "10000"))
OUTAGE_S = float(os.environ.get("WAVEMQ_TIER_OUTAGE_S", "10"))


def run(coro: object, timeout: float = 240) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def forwarded(dr: Router, n: int) -> Callable[[], Awaitable[bool]]:
    """A condition: the DR holds ``n`` subscriptions (a site's forwarded subscription counts at the DR
    once its T_SUB was accepted)."""

    async def holds() -> bool:
        return await subscriptions(dr) >= n

    return holds


async def more_reconnects(site: Router, than: int) -> bool:
    return await uplink_reconnects(site) > than


def texts(msgs: list) -> list[str]:  # type: ignore[type-arg]
    return [m.text for m in msgs]


def test_both_directions_persist_and_query_through_the_dr(tier: Tier) -> None:
    site = tier.sites[0]
    ns = tier.dir / "namespace.ent"

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        at_site = await client(site, tier)
        up = at_dr.subscribe(ns, "up/*", identifier="cloud")
        down = at_site.subscribe(ns, "down/*", identifier="site")
        await up.start()
        await down.start()
        await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
        await await_until(forwarded(tier.dr, 2), 20, "the site's subscription forwarded to the DR (and cloud's)")
        await at_site.publish(ns, "up/1", "from-site", persist=True)
        await at_dr.publish(ns, "down/1", "from-cloud")
        assert texts(await collect(up, 1, 20)) == ["from-site"]
        assert texts(await collect(down, 1, 20)) == ["from-cloud"]
        # persisted at the DR: a query at the site is answered by the DR while the uplink is up
        rows = await at_site.query(ns, "up/*")
        assert texts(rows) == ["from-site"] and at_site.last_query_source == "designated"
        tier.proxies[0].set_mode("cut", rst=True)  # uplink down: the site answers from its own store
        await await_until(lambda: "event=uplink_down" in site.output(), 15, "uplink down")
        rows = await at_site.query(ns, "up/*")
        assert texts(rows) == ["from-site"] and at_site.last_query_source == "local"
        tier.proxies[0].set_mode("pass")
        await await_until(lambda: site.output().count("event=uplink_up") >= 2, 20, "uplink up again")
        status = await at_site.status()
        uplinks = status["uplinks"]
        assert isinstance(uplinks, list) and uplinks[0]["state"] == "up"
        await at_dr.close()
        await at_site.close()

    run(main())


def test_outage_backlog_reaches_the_dr_after_restore(tier: Tier) -> None:
    site, proxy = tier.sites[0], tier.proxies[0]
    ns = tier.dir / "namespace.ent"

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "o/*", identifier="cloud")
        await cloud.start()
        at_site = await client(site, tier)
        local = at_site.subscribe(ns, "o/*", identifier="local")
        await local.start()
        await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
        proxy.set_mode("cut", rst=True)
        t0 = time.monotonic()
        sem = asyncio.Semaphore(256)

        async def pub(i: int) -> None:
            async with sem:
                await at_site.publish(ns, f"o/{i % 50}", str(i))

        await asyncio.gather(*[pub(i) for i in range(MESSAGES)])
        got_local = await collect(local, MESSAGES, 120)
        assert len(got_local) == MESSAGES  # delivered at the site at once, uplink or not
        # not synchronisation: the outage lasts OUTAGE_S, the fault this scenario injects
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t0)))
        proxy.set_mode("pass")
        got = await collect(cloud, MESSAGES, 180)
        values = [int(m.text) for m in got]
        assert len(values) == MESSAGES, f"{len(values)} of {MESSAGES} reached the DR"
        assert len(set(values)) == MESSAGES
        # one publisher: the DR sees its messages in the order the site accepted them (the site's own
        # subscriber sees that order; concurrent publishes need not be signed in numeric order)
        assert values == [int(m.text) for m in got_local]
        await at_dr.close()
        await at_site.close()

    run(main(), timeout=400)


def test_blackhole_is_detected_and_recovered(tier: Tier) -> None:
    site, proxy = tier.sites[0], tier.proxies[0]
    ns = tier.dir / "namespace.ent"

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "bh/*", identifier="cloud")
        await cloud.start()
        at_site = await client(site, tier)
        await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
        proxy.set_mode("blackhole")
        t0 = time.monotonic()
        for i in range(20):
            await at_site.publish(ns, f"bh/{i}", str(i))
        await await_until(lambda: "event=uplink_down" in site.output(), 15, "the dead link to be noticed")
        detected = time.monotonic() - t0
        assert detected <= 15, detected  # deadAfter = 3 s in these configs; default 15 s
        proxy.set_mode("pass")
        got = await collect(cloud, 20, 60)
        assert [int(m.text) for m in got] == list(range(20))
        await at_dr.close()
        await at_site.close()

    run(main())


def test_flapping_link_loses_nothing(tier: Tier) -> None:
    site, proxy = tier.sites[0], tier.proxies[0]
    ns = tier.dir / "namespace.ent"
    total = 2000

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "f/*", identifier="cloud")
        await cloud.start()
        at_site = await client(site, tier)
        await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
        flapper = proxy.flap(2.0, 2.0, 12.0)
        for i in range(total):
            await at_site.publish(ns, f"f/{i % 10}", str(i))
            if i % 100 == 0:  # not synchronisation: spread the publishes over the flaps (10 s of the 12 s)
                await asyncio.sleep(0.5)
        got = await collect(cloud, total, 120)
        flapper.join(30)
        values = [int(m.text) for m in got]
        assert values == list(range(total)), f"{len(values)} delivered; first gap near {_gap(values)}"
        await at_dr.close()
        await at_site.close()

    run(main(), timeout=300)


def _gap(values: list[int]) -> int:
    for i, v in enumerate(values):
        if v != i:
            return i
    return len(values)


def test_dr_kill9_mid_stream(tier: Tier) -> None:
    site = tier.sites[0]
    ns = tier.dir / "namespace.ent"
    total = 1500

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "k/*", identifier="cloud")
        await cloud.start()
        await at_dr.close()  # durable subscription: it keeps queueing at the DR
        at_site = await client(site, tier)
        await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
        for i in range(total):
            await at_site.publish(ns, f"k/{i % 10}", str(i))
            if i == total // 2:
                tier.dr.kill9()
                tier.dr.start()
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "k/*", identifier="cloud")
        await cloud.start()
        # at-least-once from the DR's queue: a redelivery after the crash is possible, a loss is not (so
        # collect until every distinct value is here: a second copy does not stand in for the last one)
        values: list[int] = []
        deadline = time.monotonic() + 120
        while len(set(values)) < total and time.monotonic() < deadline:
            got = await collect(cloud, total - len(set(values)), deadline - time.monotonic())
            values += [int(m.text) for m in got]
        assert sorted(set(values)) == list(range(total)), f"missing {sorted(set(range(total)) - set(values))[:10]}"
        assert _no_reorder(values)
        await at_dr.close()
        await at_site.close()

    run(main(), timeout=300)


def _no_reorder(values: list[int]) -> bool:
    seen: set[int] = set()
    high = -1
    for v in values:
        if v in seen:
            continue  # a redelivery of something already seen
        if v < high:
            return False
        seen.add(v)
        high = v
    return True


def test_site_kill9_mid_stream(tier: Tier) -> None:
    site = tier.sites[0]
    ns = tier.dir / "namespace.ent"
    total = 1000

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "s/*", identifier="cloud")
        await cloud.start()
        at_site = await client(site, tier, reconnect=False)
        await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
        tier.proxies[0].set_mode("cut")  # keep messages in the site's trunk queue when it dies
        accepted = []
        for i in range(total):
            await at_site.publish(ns, f"s/{i % 10}", str(i))
            accepted.append(i)
        site.kill9()
        await at_site.close()
        tier.proxies[0].set_mode("pass")
        site.start()
        got = await collect(cloud, total, 120)
        values = [int(m.text) for m in got]
        assert values == accepted
        await at_dr.close()

    run(main(), timeout=300)


def test_two_sites_and_a_dr(tmp_path: Path) -> None:
    tier = make_tier(tmp_path, n_sites=2)
    try:
        a, b = tier.sites
        ns = tier.dir / "namespace.ent"

        async def main() -> None:
            at_b = await client(b, tier)
            sub = at_b.subscribe(ns, "x/*", identifier="b-listener")
            await sub.start()
            at_a = await client(a, tier)
            await await_until(lambda: "event=uplink_up" in a.output() and "event=uplink_up" in b.output(), 20,
                              "uplinks")
            await await_until(forwarded(tier.dr, 1), 20, "b's subscription forwarded to the DR")
            for i in range(10):
                await at_a.publish(ns, "x/a", str(i))
            got = await collect(sub, 10, 30)
            assert [m.text for m in got] == [str(i) for i in range(10)]
            assert not await collect(sub, 1, 2)  # and nothing twice
            await at_a.close()
            await at_b.close()

        run(main())
    finally:
        tier.stop()


def test_trunk_bound_drops_exactly_the_oldest(tmp_path: Path) -> None:
    tier = make_tier(tmp_path, site_extra="")
    try:
        site, proxy = tier.sites[0], tier.proxies[0]
        site.stop()
        text = (tier.dir / "site0.toml").read_text().replace("  flushInterval = 1",
                                                              "  flushInterval = 1\n  trunkingQueueMaxLength = 50")
        (tier.dir / "site0.toml").write_text(text)
        site.start()
        ns = tier.dir / "namespace.ent"

        async def main() -> None:
            at_dr = await client(tier.dr, tier)
            cloud = at_dr.subscribe(ns, "q/*", identifier="cloud")
            await cloud.start()
            proxy.set_mode("cut", rst=True)
            at_site = await client(site, tier)
            for i in range(80):
                await at_site.publish(ns, "q/1", str(i))
            status = await at_site.status()
            drops = status.get("drops")
            assert isinstance(drops, dict) and drops.get("overflow-count") == 30, drops
            proxy.set_mode("pass")
            got = await collect(cloud, 50, 60)
            assert [int(m.text) for m in got] == list(range(30, 80))
            await at_dr.close()
            await at_site.close()

        run(main())
    finally:
        tier.stop()


def test_peer_authentication_failures_are_refused_with_a_log_line(tmp_path: Path) -> None:
    tier = make_tier(tmp_path)
    try:
        # a site asking a DR for a namespace it is not designated for
        wv(tier.env, tier.dir, "mke", "-o", "other.ent", "--expiry", "1y", "--nopassphrase")
        other = format_id(load_entity(tier.dir / "other.ent").id)
        lost = Router("lost", tier.dir, tier.env)
        lost.config(routers=f'[[RoutingConfig.Router]]\n  Namespace = "{other}"\n'
                            f'  Address = "{tier.dr.peer_address}"\n')
        lost.start()
        wait_until(lambda: "not-designated" in tier.dr.output() or "not a designated router" in lost.output(), 20,
                 "the refusal")
        assert "event=trunk_auth_failed" in lost.output() or "event=trunk_auth_failed" in tier.dr.output()
        lost.stop()
        # a DR whose route proof grants only a sub-resource refuses to start
        wv(tier.env, tier.dir, "mke", "-o", "narrow.ent", "--expiry", "1y", "--nopassphrase")
        wv(tier.env, tier.dir, "rtgrant", "--attester", "namespace.ent", "--subject", "narrow.ent", "--expiry", "1y",
           "wavemq:route@namespace.ent/a/*")
        wv(tier.env, tier.dir, "rtprove", "--subject", "narrow.ent", "-o", "narrow.pem",
           "wavemq:route@namespace.ent/a/*")
        narrow = Router("narrow", tier.dir, tier.env)
        narrow.config(designated=[tier.dir / "narrow.pem"])
        try:
            narrow.start(timeout=10)
            raise AssertionError("a DR with a sub-resource route proof started")
        except AssertionError as exc:
            if "started" in str(exc) and "did not start" not in str(exc):
                raise
        assert "does not grant this router" in narrow.output() and "wavemq:route on * of namespace" in narrow.output()
        narrow.stop()
    finally:
        tier.stop()


def test_revocation_issued_at_the_dr_reaches_the_site_when_it_reconnects(tier: Tier) -> None:
    site, proxy = tier.sites[0], tier.proxies[0]
    ns = tier.dir / "namespace.ent"
    wv(tier.env, tier.dir, "mke", "-o", "doomed.ent", "--expiry", "1y", "--nopassphrase")
    grant = wv(tier.env, tier.dir, "rtgrant", "--attester", "namespace.ent", "--subject", "doomed.ent",
               "--expiry", "1y", "wavemq:subscribe,publish@namespace.ent/*")
    att_hash = grant.strip().split()[-1]

    async def main() -> None:
        from wavemq_edge.client import Client, SubscriptionEnded

        doomed = await Client.connect(site.agent_address, entity=tier.dir / "doomed.ent", wave_db=tier.dir / "wave")
        sub = doomed.subscribe(ns, "r/*", identifier="doomed")
        await sub.start()
        await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
        proxy.set_mode("cut", rst=True)  # the site is offline when the grant is revoked in the cloud
        wv(tier.env, tier.dir, "revoke", "--attester", "namespace.ent", "--attestation", att_hash, "-o", "rev.pem")
        wv(tier.env, tier.dir, "import", "--db", str(tier.dir / "dr-wave"), "rev.pem")
        await await_until(lambda: "event=revocation_learned" in tier.dr.output(), 10,
                          "the DR to learn the revocation")
        # the site has tried its uplink since, through the cut link, and learned nothing
        tried = await uplink_reconnects(site)
        await await_until(lambda: more_reconnects(site, tried), 15, "an uplink attempt after the revocation")
        assert "event=revocation_received" not in site.output()
        proxy.set_mode("pass")
        await await_until(lambda: "event=revocation_received" in site.output(), 30,
                          "the revocation to reach the site")
        try:
            await asyncio.wait_for(sub.__anext__(), 10)
            raise AssertionError("the revoked subscription delivered a message")
        except SubscriptionEnded as exc:
            assert "revoked" in str(exc)
        await doomed.close()

    run(main())


LIVE_BACKLOG = int(os.environ.get("WAVEMQ_TIER_LIVE_BACKLOG", "6000"))


async def _queue_a_backlog(tier: Tier, at_site: Client, local: Subscription) -> list[str]:
    """Cut the uplink, queue ``LIVE_BACKLOG`` messages from one publisher (64 publishes in flight), restore
    the link and wait for the uplink: returns the backlog in the order the site accepted it."""
    site, proxy = tier.sites[0], tier.proxies[0]
    ns = tier.dir / "namespace.ent"
    await await_until(lambda: "event=uplink_up" in site.output(), 20, "uplink up")
    proxy.set_mode("cut", rst=True)
    await await_until(lambda: "event=uplink_down" in site.output(), 15, "uplink down")
    sem = asyncio.Semaphore(64)

    async def pub(i: int) -> None:
        async with sem:
            await at_site.publish(ns, f"lv/b/{i % 50}", f"b{i}")

    await asyncio.gather(*[pub(i) for i in range(LIVE_BACKLOG)])
    accepted = texts(await collect(local, LIVE_BACKLOG, 120))
    assert len(accepted) == LIVE_BACKLOG
    proxy.set_mode("pass")
    await await_until(lambda: site.output().count("event=uplink_up") >= 2, 30, "uplink up again")
    return accepted


def test_a_publisher_without_backlog_is_not_held_behind_anothers_drain(tier: Tier) -> None:
    """Publisher P queues a backlog of thousands while the uplink is down; once it is up again publisher
    Q, with nothing queued, publishes: Q's messages reach the DR's subscriber before P's drain is over
    (the live lane); P's backlog arrives in the order the site accepted it; nothing lost or twice."""
    site = tier.sites[0]
    ns = tier.dir / "namespace.ent"
    q_entity = another_publisher(tier, "q.ent")
    live_n = 5

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "lv/*", identifier="cloud")
        await cloud.start()
        at_site = await client(site, tier)
        local = at_site.subscribe(ns, "lv/b/*", identifier="local")
        await local.start()
        q = await client(site, tier, entity=q_entity)
        accepted = await _queue_a_backlog(tier, at_site, local)
        for j in range(live_n):
            await q.publish(ns, f"lv/q/{j}", f"q{j}")
        arrived = texts(await collect(cloud, LIVE_BACKLOG + live_n, 240))
        assert len(arrived) == LIVE_BACKLOG + live_n and len(set(arrived)) == len(arrived)
        assert [x for x in arrived if x.startswith("b")] == accepted  # P's backlog in order
        assert [x for x in arrived if x.startswith("q")] == [f"q{j}" for j in range(live_n)]
        last_q = arrived.index(f"q{live_n - 1}")
        print(f"Q's last message arrived at {last_q} of {len(arrived)}")
        assert last_q < arrived.index(accepted[-1]), f"Q's last message arrived at {last_q} of {len(arrived)}, " \
                                                     "after P's drain"
        await q.close()
        await at_dr.close()
        await at_site.close()

    run(main(), timeout=400)


def test_a_publishers_new_messages_during_its_drain_follow_its_backlog(tier: Tier) -> None:
    """Publisher P queues a backlog of thousands while the uplink is down, then publishes again while it
    drains: at the DR's subscriber P's new messages arrive after all of its backlog, in order, none lost
    or twice (per-publisher order holds without exception)."""
    site = tier.sites[0]
    ns = tier.dir / "namespace.ent"
    live_n = 5

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "lv/*", identifier="cloud")
        await cloud.start()
        at_site = await client(site, tier)
        local = at_site.subscribe(ns, "lv/b/*", identifier="local")
        await local.start()
        accepted = await _queue_a_backlog(tier, at_site, local)
        for j in range(live_n):
            await at_site.publish(ns, f"lv/l/{j}", f"l{j}")
        arrived = texts(await collect(cloud, LIVE_BACKLOG + live_n, 240))
        assert len(arrived) == LIVE_BACKLOG + live_n and len(set(arrived)) == len(arrived)
        assert arrived == accepted + [f"l{j}" for j in range(live_n)]
        await at_dr.close()
        await at_site.close()

    run(main(), timeout=400)


def _first_seen(values: list[str]) -> list[str]:
    """Values in the order of their first arrival (a redelivery after a crash is allowed, not a reorder)."""
    seen: set[str] = set()
    out: list[str] = []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def test_per_publisher_order_through_kill9_of_either_side_during_a_drain(tier: Tier) -> None:
    """Publisher P's backlog of thousands drains while P (held behind its backlog) and Q (nothing queued)
    publish; the DR is killed (-9) and restarted, then the site. At the DR's durable subscription each
    publisher's messages arrive in the order the site accepted them (first arrivals), none lost."""
    site = tier.sites[0]
    ns = tier.dir / "namespace.ent"
    q_entity = another_publisher(tier, "q.ent")

    async def main() -> None:
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "lv/*", identifier="cloud")
        await cloud.start()
        await at_dr.close()  # durable: it keeps queueing at the DR, across the DR's restart too
        at_site = await client(site, tier, reconnect=False)
        local = at_site.subscribe(ns, "lv/b/*", identifier="local")
        await local.start()
        q = await client(site, tier, reconnect=False, entity=q_entity)
        accepted = await _queue_a_backlog(tier, at_site, local)
        for j in range(30):
            if j == 10:
                tier.dr.kill9()
                tier.dr.start()
            if j == 20:
                site.kill9()
                await at_site.close()
                await q.close()
                site.start()
                at_site = await client(site, tier, reconnect=False)
                q = await client(site, tier, reconnect=False, entity=q_entity)
            await at_site.publish(ns, f"lv/l/{j}", f"l{j}")
            await q.publish(ns, f"lv/q/{j}", f"q{j}")
        at_dr = await client(tier.dr, tier)
        cloud = at_dr.subscribe(ns, "lv/*", identifier="cloud")
        await cloud.start()
        total = LIVE_BACKLOG + 60
        got: list[str] = []
        deadline = time.monotonic() + 240
        while len(set(got)) < total and time.monotonic() < deadline:
            got += texts(await collect(cloud, total - len(set(got)), deadline - time.monotonic()))
        first = _first_seen(got)
        expected = accepted + [f"{p}{j}" for p in "lq" for j in range(30)]
        assert len(first) == total, f"{total - len(first)} missing: {sorted(set(expected) - set(first))[:10]}"
        assert [x for x in first if x[0] in "bl"] == accepted + [f"l{j}" for j in range(30)]
        assert [x for x in first if x[0] == "q"] == [f"q{j}" for j in range(30)]
        print(f"redelivered after the crashes: {len(got) - len(first)}")
        await at_dr.close()
        await at_site.close()
        await q.close()

    run(main(), timeout=400)
