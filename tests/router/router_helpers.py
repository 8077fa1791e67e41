"""Helpers for the sans-I/O router tests: a namespace, entities, grants and a core on a memory store.

A module with its own name (not a conftest) so tests import it explicitly without clashing with the
other test directories' conftest modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wavemq_edge.router import AgentSession, RouterCore, RouterOptions
from wavemq_edge.storage import MemoryBackend, QueueLimits, QueueStore, StoreOptions
from wavemq_edge.wave import (
    PSET_WAVEMQ,
    EntitySecret,
    MemoryStore,
    Statement,
    Verifier,
    build_proof,
    create_attestation,
    create_entity,
    sign_handshake,
)
from wavemq_edge.wire import NEED_DATA, Frame, FrameDecoder, FrameType, encode_frame

T0 = 1_800_000_000.0  # wall-clock epoch of the tests (2027)
YEAR = 365 * 86400


@dataclass
class Page:
    items: list[tuple[str, bytes]]
    continuation: str | None


class MemoryPersist:
    """In-memory persisted-message store with the router's interface (last message per URI)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], bytes] = {}

    def put(self, namespace: str, uri: str, message: bytes) -> None:
        self.items[(namespace, uri)] = message

    def query(self, namespace: str, pattern: str, after_uri: str | None = None, limit: int = 100) -> Page:
        from wavemq_edge.uri import matches, parse_pattern

        pat = parse_pattern(pattern)
        hits = sorted((tuple(u.split("/")), m) for (ns, u), m in self.items.items()
                      if ns == namespace and matches(pat, tuple(u.split("/")))
                      and (after_uri is None or tuple(u.split("/")) > tuple(after_uri.split("/"))))
        page = [("/".join(k), m) for k, m in hits[:limit]]
        return Page(page, page[-1][0] if len(hits) > limit else None)


@dataclass
class World:
    ns: EntitySecret
    store: MemoryStore = field(default_factory=MemoryStore)

    def entity(self, grants: str | None = "publish,subscribe,query", resource: str = "*",
               expiry_s: int = YEAR, now: float = T0) -> EntitySecret:
        """A new entity granted ``grants`` on ``resource`` by the namespace, as of epoch ``now``."""
        e = create_entity(now - 10, YEAR)
        self.store.put_entity(e.entity)
        if grants:
            stmt = Statement(PSET_WAVEMQ, frozenset(grants.split(",")), tuple(resource.split("/")))
            att = create_attestation(self.ns, e.entity, self.ns.id, [stmt], now=now - 5, expiry_s=expiry_s)
            self.store.put_attestation(att)
        return e

    def proof(self, who: EntitySecret, perm: str, resource: str = "*", now: float = T0) -> bytes:
        stmt = Statement(PSET_WAVEMQ, frozenset((perm,)), tuple(resource.split("/")))
        return build_proof(self.store, who.id, self.ns.id, [stmt], now=now).to_bytes()


def new_world(now: float = T0) -> World:
    """A namespace (and an empty WAVE store) as of epoch ``now``; tests run at ``T0`` unless they talk
    to a real router process, which uses the real clock."""
    ns = create_entity(now - 20, YEAR)
    w = World(ns)
    w.store.put_entity(ns.entity)
    return w


def make_core(options: RouterOptions | None = None, backend: MemoryBackend | None = None,
              persist: MemoryPersist | None = None, router_id: bytes = b"R" * 36, **tiering: Any) -> RouterCore:
    """A core on a memory store at ``T0``; ``tiering``: ``designated``, ``trunked`` and ``hooks``."""
    queues = QueueStore(backend or MemoryBackend(), StoreOptions(path="mem", journal_dir=""), 0.0, T0)
    opts = options or RouterOptions(subscription_limits=QueueLimits(1000, 1 << 20, 86400), inflight_window=4)
    return RouterCore(router_id=router_id, queues=queues, verifier=Verifier(), options=opts, now=0.0,
                      wall=T0, persist=persist if persist is not None else MemoryPersist(), **tiering)


class Agent:
    """The agent side of one session, driven by hand: frames in, frames out, in memory."""

    def __init__(self, core: RouterCore, who: EntitySecret, now: float = 0.0, authenticate: bool = True) -> None:
        self.core = core
        self.who = who
        self.session = AgentSession(core, now=now, max_frame_bytes=1 << 18, handshake_timeout_s=10.0, peer="test")
        self.decoder = FrameDecoder(1 << 20)
        self.inbox: list[Frame] = []
        self.req = 0
        hello = self.recv()[0]
        assert hello.type is FrameType.HELLO
        self.challenge = hello.fields[2]
        if authenticate:
            assert isinstance(self.challenge, bytes)
            self.send(FrameType.AUTH, who.entity.raw, sign_handshake(who, self.challenge))
            assert self.recv()[0].type is FrameType.WELCOME

    def send(self, kind: FrameType, *fields: object, now: float = 0.0) -> None:
        self.session.receive_bytes(encode_frame(kind, *fields), now, T0 + now)
        self.core.service()

    def send_raw(self, data: bytes, now: float = 0.0) -> None:
        self.session.receive_bytes(data, now, T0 + now)
        self.core.service()

    def recv(self) -> list[Frame]:
        self.decoder.receive_bytes(self.session.bytes_to_send())
        out: list[Frame] = []
        while True:
            f = self.decoder.next_frame()
            if f is NEED_DATA:
                return out
            assert isinstance(f, Frame)
            out.append(f)

    def request(self, kind: FrameType, *fields: object, now: float = 0.0) -> list[Frame]:
        self.req += 1
        self.send(kind, self.req, *fields, now=now)
        return self.recv()


Factory = Callable[..., Agent]
