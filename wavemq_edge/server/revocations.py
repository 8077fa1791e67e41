"""Revocations reach a running router two ways: recorded in the WAVE database (``wv revoke``,
``wv import``; polled every ``REVOCATION_POLL_S``) and over a trunk (self-authenticating objects,
checked and recorded). Either way the core ends the subscriptions they break, and new ones travel on
over every open trunk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from ..net.trunk_net import TrunkNet
from ..router import RouterCore
from ..wave import Revocation, WaveError, WaveStore

__all__ = ["REVOCATION_POLL_S", "RevocationWatch"]

log = logging.getLogger("wavemq_edge.server")

#: How often revocations recorded in the WAVE database are picked up.
REVOCATION_POLL_S: Final = 2.0


class RevocationWatch:
    def __init__(self, store: WaveStore, core: RouterCore, known: frozenset[bytes]) -> None:
        self._store = store
        self._core = core
        self._known = known
        #: set once the trunk is up: new revocations are broadcast over it
        self.trunk: TrunkNet | None = None

    def objects(self) -> list[bytes]:
        """Every revocation object known here (sent on each new trunk connection)."""
        try:
            return [r.raw for r in self._store.revocations()]
        except WaveError:
            return []

    def learn(self, raws: list[bytes]) -> None:
        """Revocation objects that came over a trunk: checked (self-authenticating), recorded, applied."""
        now, wall = asyncio.get_running_loop().time(), time.time()
        learned: set[bytes] = set()
        for raw in raws:
            try:
                rev = Revocation.from_bytes(raw)
                if self._store.put_revocation(rev):
                    ended = self._core.add_revocation(rev, now, wall)
                    log.info("event=revocation_received commitment=%s subscriptions_ended=%d",
                             rev.commitment.hex()[:16], ended)
                learned.add(rev.commitment)
            except WaveError as exc:
                log.warning("event=bad_revocation_from_peer error=%r", str(exc))
        self._known = self._known | learned

    def poll(self) -> int:
        """Pick up revocations added to the WAVE database since the last look."""
        try:
            current = self._store.revoked_commitments()
        except WaveError as exc:
            log.warning("event=revocation_poll_failed error=%r", str(exc))
            return 0
        new = current - self._known
        self._known = current
        now, wall = asyncio.get_running_loop().time(), time.time()
        for commitment in new:
            ended = self._core.add_revocation(commitment, now, wall)
            log.info("event=revocation_learned commitment=%s subscriptions_ended=%d", commitment.hex()[:16], ended)
        if new and self.trunk is not None:
            # revocations travel: every connected site and designated router learns them now
            self.trunk.broadcast_revocations([r.raw for r in self._store.revocations() if r.commitment in new])
        return len(new)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=REVOCATION_POLL_S)
            if stop.is_set():
                return
            self.poll()
