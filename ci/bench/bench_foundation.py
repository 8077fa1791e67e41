"""Micro-benchmark of the foundation hot paths: URI matching and the frame codec.

Run: .venv/bin/python ci/bench/bench_foundation.py [--seconds S]

Prints operations per second for each case. Rates are per call on one core; compare them with each
other (for example cached vs uncached trie lookups) rather than across machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Callable

from wavemq_edge.uri import SubscriptionTrie, covers, matches, parse_pattern, parse_uri
from wavemq_edge.wire import FrameDecoder, FrameType, encode_frame


def rate(fn: Callable[[], object], seconds: float) -> float:
    n = 0
    batch = 1
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed
        batch = min(batch * 2, 4096)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=0.5, help="time per case (default 0.5)")
    args = ap.parse_args()
    s = args.seconds
    rnd = random.Random(1)
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"python={platform.python_version()}")

    uri = parse_uri("building1/floor3/room12/hvac/temperature")
    p_exact = parse_pattern("building1/floor3/room12/hvac/temperature")
    p_star = parse_pattern("building1/*/temperature")
    p_plus = parse_pattern("building1/+/+/hvac/+")
    text = "building1/floor3/room12/hvac/temperature"
    print(f"parse_uri (5 segments)            {rate(lambda: parse_uri(text), s):>12,.0f} /s")
    print(f"matches exact                     {rate(lambda: matches(p_exact, uri), s):>12,.0f} /s")
    print(f"matches a/*/z                     {rate(lambda: matches(p_star, uri), s):>12,.0f} /s")
    print(f"covers a/+/+/x/+ vs a/*/z         {rate(lambda: covers(p_plus, p_star), s):>12,.0f} /s")

    for n_subs in (100, 10_000):
        for use_cache in (True, False):
            trie: SubscriptionTrie[int] = SubscriptionTrie(use_cache=use_cache)
            for i in range(n_subs):
                kind = i % 4
                b, f, r = rnd.randrange(50), rnd.randrange(10), rnd.randrange(40)
                text = [f"b{b}/f{f}/r{r}/hvac/temperature", f"b{b}/f{f}/+/hvac/+", f"b{b}/*/temperature",
                        f"b{b}/f{f}/r{r}/*"][kind]
                trie.insert(parse_pattern(text), i)
            probes = [parse_uri(f"b{rnd.randrange(50)}/f{rnd.randrange(10)}/r{rnd.randrange(40)}/hvac/temperature")
                      for _ in range(64)]
            k = 0

            def probe(t: SubscriptionTrie[int] = trie, ps: list[tuple[str, ...]] = probes) -> None:
                nonlocal k
                t.match(ps[k & 63])
                k += 1

            label = f"trie.match {n_subs:>6} subs {'cached' if use_cache else 'uncached'}"
            print(f"{label:<34}{rate(probe, s):>12,.0f} /s")

    small = encode_frame(FrameType.PING, 1)
    msg_fields = (1, b"\x01" * 36, "building1/floor3/room12/hvac/temperature", 1_700_000_000, [b"x" * 64],
                  b"\x02" * 64, 7, False)
    msg = encode_frame(FrameType.PING, *msg_fields)
    batch = b"".join([msg] * 100)
    print(f"encode_frame small                {rate(lambda: encode_frame(FrameType.PING, 1), s):>12,.0f} /s")
    enc_rate = rate(lambda: encode_frame(FrameType.PING, *msg_fields), s)
    print(f"encode_frame message-sized ({len(msg)} B) {enc_rate:>10,.0f} /s")

    def decode_one(frame: bytes = small) -> None:
        d = FrameDecoder()
        d.receive_bytes(frame)
        d.next_frame()

    def decode_batch() -> None:
        d = FrameDecoder()
        d.receive_bytes(batch)
        for _ in range(100):
            d.next_frame()

    print(f"decode small (new decoder)        {rate(decode_one, s):>12,.0f} /s")
    print(f"decode message-sized, 100/batch   {rate(decode_batch, s) * 100:>12,.0f} frames/s")


if __name__ == "__main__":
    main()
