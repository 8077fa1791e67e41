"""MQTT devices across the trunk: a device's publish at one site reaches a WAVE agent at the designated
router and an MQTT device at a second site; each hop checks the signature and the proof the site router
made for the device (real processes: a DR and two sites, through the fault proxies of tests/tier)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tier"))

from mqtt_helpers_proc import PASSWORD_HASH, Device, device
from tier_helpers import Tier, client, collect, make_tier, wv
from waiting import await_until, wait_until

from wavemq_edge.client import Client

_LISTENING = re.compile(r"event=mqtt_listening addr=mqtt://127\.0\.0\.1:(\d+)")


@pytest.fixture
def mqtt_tier(tmp_path: Path) -> Iterator[tuple[Tier, list[int]]]:
    tier = make_tier(tmp_path, n_sites=2)
    try:
        d = tier.dir
        wv(tier.env, d, "mke", "-o", "dev.ent", "--expiry", "1y", "--nopassphrase")
        wv(tier.env, d, "rtgrant", "--attester", "namespace.ent", "--subject", "dev.ent", "--expiry", "1y",
           "wavemq:publish,subscribe@namespace.ent/plant/*")
        wv(tier.env, d, "rtprove", "--subject", "dev.ent", "-o", "dev.pem",
           "wavemq:publish,subscribe@namespace.ent/plant/*")
        extra = (f'[MqttConfig]\nlistenAddr = "127.0.0.1:0"\n[[MqttConfig.User]]\nusername = "dev"\n'
                 f'passwordHash = "{PASSWORD_HASH}"\nentity = "{d / "dev.ent"}"\nnamespace = "{tier.ns_hash}"\n'
                 f'proofs = ["{d / "dev.pem"}"]\n')
        ports = []
        for site, proxy in zip(tier.sites, tier.proxies, strict=True):
            site.stop()
            site.extra = extra
            site.config(routers=f'[[RoutingConfig.Router]]\n  Namespace = "{tier.ns_hash}"\n'
                                f'  Address = "{proxy.address}"\n')
            site.start()
            found = wait_until(lambda s=site: _LISTENING.findall(s.output()), 20.0, "the MQTT listening line")
            ports.append(int(found[-1]))
        yield tier, ports
    finally:
        tier.stop()


@pytest.fixture
def devices() -> Iterator[list[Device]]:
    started: list[Device] = []
    yield started
    for dev in started:
        dev.stop()


def test_mqtt_publish_reaches_the_dr_and_another_site(mqtt_tier: tuple[Tier, list[int]],
                                                      devices: list[Device]) -> None:
    tier, (port_a, port_b) = mqtt_tier
    a, b = tier.sites
    listener = device(port_b, "dev", client_id="listener")
    publisher = device(port_a, "dev", v5=False, client_id="publisher")
    devices += [listener, publisher]
    assert listener.subscribe(("plant/#", 1)) == [1]

    async def main() -> list[str]:
        at_dr: Client = await client(tier.dr, tier)
        async with at_dr, at_dr.subscribe(tier.dir / "namespace.ent", "plant/*", identifier="cloud") as sub:
            await await_until(lambda: a.output().count("event=uplink_up") >= 1 and
                              b.output().count("event=uplink_up") >= 1, 20, "both uplinks up")

            async def forwarded() -> bool:
                held = (await at_dr.status())["subscriptions"]
                return isinstance(held, int) and held >= 2  # the DR's own and site b's device's

            await await_until(forwarded, 20, "site b's subscription forwarded to the DR")
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, publisher.publish, "plant/line1", b"41.5", 1) == 0
            return [m.text for m in await collect(sub, 1, 30)]

    assert asyncio.run(asyncio.wait_for(main(), 90)) == ["41.5"]
    assert listener.wait_messages(1, timeout=30) == [("plant/line1", b"41.5", 1)]
