"""Queries: the last persisted message of every URI matching a pattern, page by page.

An agent's query is answered by the designated router while the namespace's uplink is up (it holds
every site's messages), and from this router's own persisted store otherwise; the answer says which
(``source``: ``"local"`` or ``"designated"``). Either way the proof is checked here first, so a query the
site would refuse never leaves it. A designated router answers a site's forwarded query from its store
(``tiering.py`` checks who signed it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..uri import UriError, parse_pattern
from ..wave import Entity, Query, format_id
from .admission import Admission
from .errors import ErrorCode
from .hooks import QueryReply, TieringHooks
from .options import RouterOptions
from .status import RouterCounters

__all__ = ["PersistedMessages", "PersistedPage", "QueryAnswer", "QueryDesk"]


class PersistedPage(Protocol):
    @property
    def items(self) -> list[tuple[str, bytes]]: ...

    @property
    def continuation(self) -> str | None: ...


class PersistedMessages(Protocol):
    """The persisted-message store (``storage.PersistStore``): last message per exact URI. Namespaces
    are given in their printable form."""

    def put(self, namespace: str, uri: str, message: bytes) -> None: ...

    def query(self, namespace: str, pattern: str, after_uri: str | None = None, limit: int = ...) -> PersistedPage:
        ...


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    messages: list[tuple[str, bytes]]
    continuation: str | None
    #: "local" (this router's store) or "designated" (the designated router's)
    source: str


class QueryDesk:
    def __init__(self, admission: Admission, persist: PersistedMessages | None, options: RouterOptions,
                 counters: RouterCounters, hooks: TieringHooks) -> None:
        self._admission = admission
        self._persist = persist
        self._options = options
        self._counters = counters
        self._hooks = hooks

    def query(self, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None], after_uri: str | None,
              limit: int, wall: float, reply: QueryReply | None = None) -> QueryAnswer | None:
        """Answer from the local store, or (``None``) hand the query to the designated router's uplink when
        the namespace has one that is up; its answer then arrives through ``reply``."""
        req = self._admission.agent_request(Query.parse, raw, source, "query", wall)
        proof = self._admission.require_proof(proof_for, req.proof_id)
        forwarder = self._hooks.query_forwarder(req.namespace)
        if forwarder is not None and reply is not None:
            self._check_proof(req, proof, wall)
            forwarder.forward_query(raw, proof, after_uri, self._limit(limit), reply)
            self._counters.queries += 1
            return None
        return self.local(req, proof, after_uri, limit, wall)

    def local(self, req: Query, proof: bytes, after_uri: str | None, limit: int, wall: float) -> QueryAnswer:
        """Answer a verified query (signature and freshness checked by the caller) from this router's
        persisted store, after checking its proof grants ``wavemq:query`` on the pattern."""
        if self._persist is None:
            raise self._admission.refusal(ErrorCode.NOT_SUPPORTED, "this router keeps no persisted messages")
        self._check_proof(req, proof, wall)
        try:
            page = self._persist.query(format_id(req.namespace), req.uri, after_uri, self._limit(limit))
        except (UriError, ValueError) as exc:
            raise self._admission.refusal(ErrorCode.BAD_URI,
                                          f"query continuation or pattern refused: {exc}") from None
        self._counters.queries += 1
        return QueryAnswer(list(page.items), page.continuation, "local")

    def _limit(self, limit: int) -> int:
        cap = self._options.query_max_results
        return max(1, min(limit, cap)) if limit > 0 else cap

    def _check_proof(self, req: Query, proof: bytes, wall: float) -> None:
        try:
            pattern = parse_pattern(req.uri)
        except UriError as exc:
            raise self._admission.refusal(ErrorCode.BAD_URI, str(exc)) from None
        self._admission.check_proof(proof, subject=req.src, namespace=req.namespace, permission="query",
                                    resource=pattern, wall=wall)
