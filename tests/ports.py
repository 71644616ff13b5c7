"""Free ports for tests that start servers on ports they must know before the server binds them.

Two shapes: a block around a base port for the embedded system (`carbon up --base-port`), and single ports (or runs of
consecutive ports) for a process a test starts, kills and restarts on the same port. Both come from below the kernel's
ephemeral range (32768 on), where no client socket can take a port while its server is down, and under pytest-xdist
each worker searches only its own share of the candidates: two workers probing at once could otherwise both find a
port free before either binds it, and then one test's processes would answer another's calls.
"""

from __future__ import annotations

import os
import random
import socket

# The embedded layout around a base port: the ops API one below it, the gateway on it, the regions in tens above.
BLOCK_BELOW = 1
BLOCK_ABOVE = 40
BLOCK_STEP = 50
# The e2e suite searches upwards, the console's downwards, so the two rarely race for one block when xdist runs them
# at the same time (and each worker has its own share of the blocks besides).
UPWARDS = range(20000, 32000, BLOCK_STEP)
DOWNWARDS = range(32000, 20000, -BLOCK_STEP)
# Single ports: below the Redis Cluster tests' pairs (16000 on), the embedded system's default block (18049 on) and
# the e2e blocks (20000 on); above the well-known servers' ports.
SINGLES = range(10000, 16000)
# Each process hands its candidates out in turn from where it stopped, so a port it handed out (and that may not be
# bound yet, or is free while its server restarts) is not handed out again until the range comes round; by then the
# test that took it has ended, since a worker runs one test at a time. It starts at a random place: two test runs on
# one machine (whose workers have the same names) would otherwise hand out the same ports in the same order, and a
# port picked but not yet bound by one run looks free to the other.
_next_index: dict[range, int] = {}


def free_base_port(candidates: range) -> int:
    """The first base port in `candidates` of this worker's share whose whole block is free right now."""
    for base in candidates:
        if _this_workers(base, BLOCK_STEP) and all(
            port_is_free(port) for port in range(base - BLOCK_BELOW, base + BLOCK_ABOVE)
        ):
            return base
    raise RuntimeError("no free port block")


def free_port() -> int:
    """One free port of this worker's share of SINGLES, not handed out by this process since the range last came
    round."""
    return free_ports(1)[0]


def free_ports(count: int, candidates: range = SINGLES) -> list[int]:
    """`count` ports of this worker's share of `candidates`, each free together with the ports up to the next
    candidate (`candidates.step` of them: a Redis Cluster node's bus port beside its client port, say)."""
    width = abs(candidates.step)
    found: list[int] = []
    start = _next_index.get(candidates)
    if start is None:
        start = random.randrange(len(candidates))
    for offset in range(len(candidates)):
        index = (start + offset) % len(candidates)
        port = candidates[index]
        if _this_workers(port, width) and all(port_is_free(p) for p in range(port, port + width)):
            found.append(port)
            if len(found) == count:
                _next_index[candidates] = index + 1
                return found
    raise RuntimeError(f"no {count} free ports in {candidates}")


def port_is_free(port: int) -> bool:
    """Nothing listens on the port (connections left in TIME_WAIT by a stopped server do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _this_workers(port: int, width: int) -> bool:
    """Under pytest-xdist, worker gwN takes the candidates whose run number (port // width) leaves N modulo the number
    of workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers < 2:
        return True
    return (port // width) % workers == int(worker.removeprefix("gw"))
