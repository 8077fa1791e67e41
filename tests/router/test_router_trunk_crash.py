"""A designated router killed (-9) while it admits a site's message: the message is not lost.

The DR acknowledges a site's batch only after admitting it, so a batch it was admitting when it died is
sent again after its restart; the DR must then store it, not drop it as a duplicate. The crash is the
state a ``kill -9`` leaves: what was written to the tmpfs journal before that instant, nothing after, and
no flush (``QueueStore.abandon``). Then the DR's store and core are rebuilt from the same durable backend
and journal directory, as at a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from router_helpers import T0, Agent, World

from wavemq_edge.router import RouterCore, RouterOptions
from wavemq_edge.storage import MemoryBackend, QueueLimits, QueueStore, StoreOptions
from wavemq_edge.wave import Message, Verifier, object_id, sign_message, sign_subscribe
from wavemq_edge.wire import FrameType

SITE = b"S" * 36
DR = b"D" * 36


class Killed(BaseException):
    """The process died here: nothing after this point happened."""


@pytest.fixture
def journal_dir() -> Iterator[str]:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    path = tempfile.mkdtemp(prefix="wmq-test-journal-", dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _dr(world: World, backend: MemoryBackend, journal_dir: str, now: float) -> RouterCore:
    """The DR's core on ``backend`` and ``journal_dir``: a fresh start, or a restart that recovers both."""
    queues = QueueStore(backend, StoreOptions(path="mem", journal_dir=journal_dir), now, T0 + now)
    opts = RouterOptions(subscription_limits=QueueLimits(1000, 1 << 20, 86400), inflight_window=4)
    return RouterCore(router_id=DR, queues=queues, verifier=Verifier(), options=opts, now=now, wall=T0 + now,
                      designated=frozenset({world.ns.id}))


def _subscribe_durably(core: RouterCore, world: World) -> None:
    """A cloud subscriber's durable subscription at the DR: it keeps queueing across the DR's restart."""
    agent = Agent(core, world.entity())
    proof = world.proof(agent.who, "subscribe")
    agent.request(FrameType.PROOF, proof)
    req = sign_subscribe(agent.who, namespace=world.ns.id, uri="k/*", sub_id="cloud", router_id=core.router_id,
                         proof_id=object_id(proof), now=T0)
    assert agent.request(FrameType.SUBSCRIBE, req.raw, False)[-1].type is FrameType.SUBSCRIBED


def _site_message(world: World, text: str) -> tuple[Message, bytes]:
    pub = world.entity()
    proof = world.proof(pub, "publish")
    msg = sign_message(pub, namespace=world.ns.id, uri=f"k/{text}", payload=[("t", text.encode())],
                       proof_id=object_id(proof), now=T0, origin_router=SITE)
    return msg, proof


def _depth(core: RouterCore) -> int:
    (sub,) = [s for s in core.subscriptions() if s.entity]
    return core.queues.stats(sub.queue_id).depth


@pytest.mark.parametrize("writes", [0, 1, 2, 3])
def test_a_message_the_dr_dies_admitting_is_stored_when_the_site_sends_it_again(
        world: World, journal_dir: str, writes: int) -> None:
    """Killed after ``writes`` of the journal writes its admission makes (the dedup id, the proof, the
    queue append, in whatever order): the site's resend is stored, not dropped as a duplicate."""
    backend = MemoryBackend()
    dr = _dr(world, backend, journal_dir, 0.0)
    _subscribe_durably(dr, world)
    msg, proof = _site_message(world, "238")
    journal = dr.queues._journal
    assert journal is not None
    write_many = journal.write_many
    done = 0

    def write_then_die(bodies: tuple[bytes, ...] | list[bytes]) -> bool:
        nonlocal done
        if done == writes:
            raise Killed
        done += 1
        return write_many(bodies)

    journal.write_many = write_then_die  # type: ignore[method-assign]
    with contextlib.suppress(Killed):
        dr.tiering.publish_from_site(SITE, msg, proof, 1.0, T0 + 1.0)
    dr.queues.abandon()  # kill -9: no final flush; the journal stays as it was
    dr = _dr(world, backend, journal_dir, 2.0)
    # never acknowledged (the DR acknowledges a batch after admitting it), so the site sends it again
    dr.tiering.publish_from_site(SITE, msg, proof, 3.0, T0 + 3.0)
    assert _depth(dr) >= 1, f"lost: killed after {done} journal write(s) of its admission"
    dr.queues.close(4.0)


def test_a_message_the_dr_admitted_before_dying_is_not_stored_twice(world: World, journal_dir: str) -> None:
    """Killed after the whole admission (queued, id recorded) but before the acknowledgement left: the
    resend is recognised by its id in the replayed dedup window and not queued a second time."""
    backend = MemoryBackend()
    dr = _dr(world, backend, journal_dir, 0.0)
    _subscribe_durably(dr, world)
    msg, proof = _site_message(world, "750")
    dr.tiering.publish_from_site(SITE, msg, proof, 1.0, T0 + 1.0)
    dr.queues.abandon()
    dr = _dr(world, backend, journal_dir, 2.0)
    assert _depth(dr) == 1
    assert dr.tiering.publish_from_site(SITE, msg, proof, 3.0, T0 + 3.0).duplicate
    assert _depth(dr) == 1
    dr.queues.close(4.0)
