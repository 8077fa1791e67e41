"""The tiering tests' fault-injecting TCP proxy: the bench's one implementation, re-exported.

See :mod:`wavemq_edge.bench.proxy` (modes ``pass``, ``blackhole``, ``cut``, ``delay``; ``flap``; bounded).
"""

from __future__ import annotations

from wavemq_edge.bench.proxy import FaultProxy, ProxyMode

__all__ = ["FaultProxy", "ProxyMode"]
