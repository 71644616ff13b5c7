"""Free ports for tests that start the embedded system (`carbon up --base-port`)."""

from __future__ import annotations

import os
import socket

# The embedded layout around a base port: the ops API one below it, the gateway on it, the regions in tens above.
BLOCK_BELOW = 1
BLOCK_ABOVE = 40
# Below the ephemeral range, where clients never bind. The e2e suite searches upwards, the console's downwards, so the
# two rarely race for one block when xdist runs them at the same time.
UPWARDS = range(20000, 32000, 50)
DOWNWARDS = range(32000, 20000, -50)


def free_base_port(candidates: range) -> int:
    """The first base port in `candidates` whose whole block is free right now. Suites that may run at the same time
    search different ranges (or directions), so they rarely race for the same block."""
    for base in candidates:
        if not _this_workers(base):
            continue
        if all(port_is_free(port) for port in range(base - BLOCK_BELOW, base + BLOCK_ABOVE)):
            return base
    raise RuntimeError("no free port block")


def port_is_free(port: int) -> bool:
    """Nothing listens on the port (connections left in TIME_WAIT by a stopped server do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _this_workers(base: int) -> bool:
    """Under pytest-xdist each worker takes its own share of the blocks: two workers probing at once could both find a
    block free before either system binds it, and then one system's processes would answer the other's calls."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers < 2:
        return True
    return (base // 50) % workers == int(worker.removeprefix("gw"))
