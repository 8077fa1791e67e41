"""asyncio glue (thin pumps over the sans-I/O cores): the agent server, the trunk's peer listener and
uplink dialers, the shared write scheduler, and the /metrics endpoint."""
