"""wavemq_edge: a tiered publish/subscribe message router with WAVE-style security."""

__version__ = "0.1.0"

__all__ = ["__version__"]
