"""Connection slots of the agent API: who may take one, and whom to drop when they run short.

No I/O and no clock of its own: the glue asks ``admit(key, address)`` when a connection arrives and tells
the table when a connection authenticates (``authenticated``), makes its first authorised request
(``authorised``) and goes away (``release``). The random source is injected, so the early drop is
reproducible in tests.

Why each bound (issue: one host held every slot with connections that never finished the handshake,
and with authenticated connections that trickled a partial frame):

* **Handshakes in progress** have their own, small pool, bounded in the manner of sshd's ``MaxStartups
  start:rate:full``: below ``start`` every connection is admitted; from ``start`` on a new one is refused
  with probability ``rate`` %, rising linearly to 100 % at ``full``. A real agent's handshake takes one
  round trip, so this pool is almost empty unless someone is holding handshakes open.
* **Per source address**, at most ``max_handshakes_per_address`` handshakes (sshd's
  ``PerSourceMaxStartups``) and ``max_per_address`` connections. The first bound is below ``start``, so
  one host alone can never push the handshake pool into early drop; the second keeps one host from
  holding every connection slot. Unix-socket connections (no address) are local: exempt from both, and
  from the handshake pool.
* **Connection slots** (``max_connections``, and each address's ``max_per_address``): when full, the
  oldest connection that has never made an authorised request (still in the handshake, or
  authenticated with a throw-away key and idle) is evicted to make room; only when every connection
  in the pool has done real work is the newcomer refused. A key costs nothing to make, so
  authenticating alone earns no protection; a request the router accepted (a grant was checked) does.

Every refusal and eviction is counted by reason (``refused``, ``evicted``).
"""

from __future__ import annotations

import random as _random
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Generic, TypeVar

__all__ = ["Admitted", "Phase", "RefusalReason", "Refused", "SlotLimits", "SlotTable"]

K = TypeVar("K", bound=Hashable)

#: Percent granularity of the early drop (sshd draws from 0..99 too).
_PERCENT: Final = 100


class Phase(Enum):
    HANDSHAKE = "handshake"
    #: authenticated, no authorised request yet: evictable
    IDLE = "idle"
    #: has made an authorised request: never evicted
    ACTIVE = "active"


class RefusalReason(Enum):
    """Why a new connection was refused (the ``reason`` label of the counters)."""

    MAX_CONNECTIONS = "max_connections"
    PER_ADDRESS = "per_address"
    HANDSHAKES_FULL = "handshakes_full"
    HANDSHAKE_EARLY_DROP = "handshake_early_drop"
    HANDSHAKES_PER_ADDRESS = "handshakes_per_address"


@dataclass(frozen=True, slots=True)
class SlotLimits:
    """The bounds, as ``LimitsConfig`` names them (see the module docstring)."""

    max_connections: int
    max_per_address: int
    #: sshd's ``full``: no new handshake beyond this many in progress
    max_handshakes: int
    #: sshd's ``start``: early drop begins at this many handshakes in progress
    handshake_drop_start: int
    #: sshd's ``rate``: percent refused at ``start``
    handshake_drop_rate: int
    max_handshakes_per_address: int

    def __post_init__(self) -> None:
        if not 0 <= self.handshake_drop_start <= self.max_handshakes:
            raise ValueError(f"handshake_drop_start={self.handshake_drop_start} must be in "
                             f"0..max_handshakes={self.max_handshakes}")
        if not 0 <= self.handshake_drop_rate <= _PERCENT:
            raise ValueError(f"handshake_drop_rate={self.handshake_drop_rate} must be a percentage")
        if min(self.max_connections, self.max_per_address, self.max_handshakes,
               self.max_handshakes_per_address) < 1:
            raise ValueError(f"every bound must be >= 1: {self}")


@dataclass(frozen=True, slots=True)
class Admitted(Generic[K]):
    #: connections to close now (their slots are already free in the table)
    evict: tuple[K, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    reason: RefusalReason
    #: one line for the ERROR frame and the log, naming the bound
    message: str


@dataclass(slots=True)
class _Slot:
    address: str | None
    phase: Phase


class SlotTable(Generic[K]):
    """See the module docstring."""

    def __init__(self, limits: SlotLimits, *, random: Callable[[], float] = _random.random) -> None:
        self.limits = limits
        self._random = random
        self._slots: dict[K, _Slot] = {}
        #: never-authorised connections, oldest first (insertion order is admission order)
        self._evictable: OrderedDict[K, None] = OrderedDict()
        #: the same, per source address
        self._evictable_at: dict[str, OrderedDict[K, None]] = {}
        self._per_address: dict[str, int] = {}
        self._handshakes = 0
        self._handshakes_per_address: dict[str, int] = {}
        self.refused: dict[str, int] = {r.value: 0 for r in RefusalReason}
        #: evictions by the pool that ran short: ``max_connections`` or ``per_address``
        self.evicted: dict[str, int] = {RefusalReason.MAX_CONNECTIONS.value: 0, RefusalReason.PER_ADDRESS.value: 0}

    # ------------------------------------------------------------------ figures

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: object) -> bool:
        return key in self._slots

    @property
    def handshakes(self) -> int:
        """Handshakes in progress (TCP only)."""
        return self._handshakes

    def per_address(self, address: str) -> int:
        return self._per_address.get(address, 0)

    def phase(self, key: K) -> Phase | None:
        slot = self._slots.get(key)
        return slot.phase if slot is not None else None

    # ------------------------------------------------------------------ transitions

    def admit(self, key: K, address: str | None) -> Admitted[K] | Refused:
        """A connection arrived from ``address`` (None: the Unix socket). On ``Admitted`` the caller
        closes every connection in ``evict``; they no longer hold a slot."""
        assert key not in self._slots, "admitted twice"
        if address is not None:
            refusal = self._check_handshakes(address)
            if refusal is not None:
                return self._refuse(refusal)
        lim = self.limits
        evict: list[K] = []
        if address is not None and self._per_address.get(address, 0) >= lim.max_per_address:
            victim = self._oldest_evictable(address)
            if victim is None:
                return self._refuse(Refused(RefusalReason.PER_ADDRESS,
                                            f"too many connections from {address} "
                                            f"(LimitsConfig.maxConnectionsPerAddress={lim.max_per_address})"))
            self._evict(victim, RefusalReason.PER_ADDRESS, evict)
        if len(self._slots) >= lim.max_connections:
            victim = self._oldest_evictable(None)
            if victim is None:
                return self._refuse(Refused(RefusalReason.MAX_CONNECTIONS, f"too many connections "
                                            f"(LimitsConfig.maxConnections={lim.max_connections})"))
            self._evict(victim, RefusalReason.MAX_CONNECTIONS, evict)
        self._slots[key] = _Slot(address, Phase.HANDSHAKE)
        self._evictable[key] = None
        if address is not None:
            self._evictable_at.setdefault(address, OrderedDict())[key] = None
            self._per_address[address] = self._per_address.get(address, 0) + 1
            self._handshakes += 1
            self._handshakes_per_address[address] = self._handshakes_per_address.get(address, 0) + 1
        return Admitted(tuple(evict))

    def authenticated(self, key: K) -> None:
        """The handshake completed: the slot leaves the handshake pool (still evictable)."""
        slot = self._slots.get(key)
        if slot is None or slot.phase is not Phase.HANDSHAKE:
            return
        slot.phase = Phase.IDLE
        self._end_handshake(slot)

    def authorised(self, key: K) -> None:
        """The connection made a request the router accepted: it is never evicted from now on."""
        slot = self._slots.get(key)
        if slot is None or slot.phase is Phase.ACTIVE:
            return
        if slot.phase is Phase.HANDSHAKE:
            self._end_handshake(slot)
        slot.phase = Phase.ACTIVE
        self._forget_evictable(key, slot)

    def release(self, key: K) -> None:
        """The connection is gone (or evicted). Unknown keys are ignored: refused connections never
        held a slot, and an evicted one is released again when its transport closes."""
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        self._forget_evictable(key, slot)
        if slot.phase is Phase.HANDSHAKE:
            self._end_handshake(slot)
        if slot.address is not None:
            _decrement(self._per_address, slot.address)

    # ------------------------------------------------------------------ internals

    def _check_handshakes(self, address: str) -> Refused | None:
        lim = self.limits
        if self._handshakes_per_address.get(address, 0) >= lim.max_handshakes_per_address:
            return Refused(RefusalReason.HANDSHAKES_PER_ADDRESS,
                           f"too many handshakes in progress from {address} "
                           f"(LimitsConfig.maxHandshakesPerAddress={lim.max_handshakes_per_address})")
        n = self._handshakes
        if n >= lim.max_handshakes:
            return Refused(RefusalReason.HANDSHAKES_FULL,
                           f"too many handshakes in progress (LimitsConfig.maxHandshakes={lim.max_handshakes})")
        if n >= lim.handshake_drop_start:
            # sshd's drop_connection(): rate % at start, rising linearly to 100 % at full.
            span = lim.max_handshakes - lim.handshake_drop_start
            rate = lim.handshake_drop_rate
            percent = rate + (_PERCENT - rate) * (n - lim.handshake_drop_start) / span
            if self._random() * _PERCENT < percent:
                return Refused(RefusalReason.HANDSHAKE_EARLY_DROP,
                               f"{n} handshakes in progress: refused early (LimitsConfig.handshakeDropStart="
                               f"{lim.handshake_drop_start}, handshakeDropRate={lim.handshake_drop_rate})")
        return None

    def _refuse(self, refusal: Refused) -> Refused:
        self.refused[refusal.reason.value] += 1
        return refusal

    def _oldest_evictable(self, address: str | None) -> K | None:
        """The oldest never-authorised connection, of ``address`` when given."""
        order = self._evictable if address is None else self._evictable_at.get(address)
        return next(iter(order), None) if order else None

    def _evict(self, victim: K, pool: RefusalReason, evict: list[K]) -> None:
        self.evicted[pool.value] += 1
        evict.append(victim)
        self.release(victim)

    def _forget_evictable(self, key: K, slot: _Slot) -> None:
        self._evictable.pop(key, None)
        if slot.address is not None:
            order = self._evictable_at.get(slot.address)
            if order is not None:
                order.pop(key, None)
                if not order:
                    del self._evictable_at[slot.address]

    def _end_handshake(self, slot: _Slot) -> None:
        if slot.address is not None:
            self._handshakes -= 1
            _decrement(self._handshakes_per_address, slot.address)


def _decrement(counts: dict[str, int], key: str) -> None:
    n = counts.get(key, 0) - 1
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)
