"""``wavemq-edge demo``: hello world end to end, with its own router in a temporary directory.

What README's quick start does by hand (``wv mke``, ``wv rtgrant``, ``wavemq-edge run``, ``sub``, ``pub``),
in one process: a namespace and a service entity, a grant, a router on a free loopback port, five
publishes to a subscriber that prints them. Imported by :mod:`.client_cmds` only for ``demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..client import Client
from ..config import ListenAddress, LocalConfig, load_default_config
from ..ops import configure_logging
from ..server import Server as RouterService
from ..wave import (
    PSET_WAVEMQ,
    Statement,
    WaveStore,
    build_proof,
    create_attestation,
    create_entity,
    format_id,
    save_entity_secret,
)
from .client_cmds import CLIENT_TIMEOUT_S
from .exit_codes import ExitCode

__all__ = ["demo"]


async def demo(args: argparse.Namespace) -> ExitCode:
    """Run the demo; with ``--keep`` the temporary directory stays (its path is printed)."""
    configure_logging("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="wavemq-demo-"))
    now = time.time()
    year = 365 * 86400
    # wv mke -o namespace.ent / service.ent ; wv rtgrant ... "wavemq:subscribe,publish,query@namespace.ent/*"
    ns = create_entity(now, year, label="demo namespace")
    service = create_entity(now, year, label="demo service")
    save_entity_secret(tmp / "namespace.ent", ns)
    save_entity_secret(tmp / "service.ent", service)
    with WaveStore(tmp / "wave") as store:
        store.put_entity(ns.entity)
        store.put_entity(service.entity)
        grant = Statement(PSET_WAVEMQ, frozenset({"subscribe", "publish", "query"}), ("*",))
        store.put_attestation(create_attestation(ns, service.entity, ns.id, [grant], now=now, expiry_s=year))
        # wv rtprove: built now, because the router (in this process) will hold the database open.
        proof = build_proof(store, service.id, ns.id, [grant], now=now).to_bytes()
    print(f"namespace {format_id(ns.id)}\nservice   {format_id(service.id)}\ndirectory {tmp}")
    # The crash journal belongs on tmpfs (/dev/shm where it exists), never on the demo's disk directory.
    shm = Path("/dev/shm")
    journal = Path(tempfile.mkdtemp(prefix="wavemq-demo-journal-", dir=shm if shm.is_dir() else tmp))
    config = load_default_config(tmp / "state")
    config = replace(config, local=LocalConfig(ListenAddress("127.0.0.1", 0), None),
                     wave=replace(config.wave, database=tmp / "wave"),
                     queue=replace(config.queue, journal_dir=journal))
    router = RouterService(config)
    ready = asyncio.Event()
    serve = asyncio.create_task(router.serve(ready))
    try:
        await asyncio.wait_for(ready.wait(), CLIENT_TIMEOUT_S)
        addr = router.listen_addresses[0]
        print(f"router    {addr}")
        client = await Client.connect(addr, entity=service, proofs=[proof], reconnect=False)
        async with client, client.subscribe(ns.id, "demo/*") as sub:
            for _ in range(5):
                await client.publish(ns.id, "demo/hello", "hello world")
            received = 0
            async for msg in sub:
                print(msg.text, flush=True)
                received += 1
                if received == 5:
                    break
    finally:
        router.should_exit.set()
        await asyncio.wait_for(serve, CLIENT_TIMEOUT_S)
        shutil.rmtree(journal, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return ExitCode.OK
