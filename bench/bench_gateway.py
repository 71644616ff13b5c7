"""What the front door costs: the same calls through the gateway and straight to the region, same run, as deployed.

One region's identity, ledger and ingest run as processes on PostgreSQL and Redis (bench_ingest_support.py), and the
gateway as a process in front of them, authenticating its callers as production does (bearer keys checked against
the configured digests, method and region scopes, the per-caller rate limit in Redis). Two comparisons:
- a unary read: LedgerService.GetBalance by CARBON_BENCH_CLIENTS concurrent clients (default 8), each making
  CARBON_BENCH_READS calls (default 300), as a platform through the gateway vs straight to the ledger;
- SubmitEvents: signed batches of 500 transit trips (fresh events each, every one credited), CARBON_BENCH_BATCHES
  per path (default 12) from 4 concurrent clients, as the data partner through the gateway vs straight to ingest.
Each comparison alternates the two paths in two rounds, so drift of the machine hits both. The baseline is the
straight path. Last line: one JSON object with the figures, `read_ratio` and `submit_ratio` (throughput through the
gateway ÷ straight: higher is better, 1 means the front door costs nothing) and `ratio`, the lower of the two.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import grpc
from bench_ingest_support import (
    REGION,
    accounts_for,
    open_accounts,
    p99_ms,
    private_schemas,
    redis_url,
    region,
    register_partner,
    service_process,
    signed,
    trips,
)

from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from gateway.domain.callers import key_digest_hex
from service_kit.topology import RegionEntry, Registry

CLIENTS = int(os.environ.get("CARBON_BENCH_CLIENTS", "8"))
READS = int(os.environ.get("CARBON_BENCH_READS", "300"))
BATCHES = int(os.environ.get("CARBON_BENCH_BATCHES", "12"))
BATCH_SIZE = 500
SUBMITTERS = 4
# Enough daily-cap room for every event of both paths and their warm-ups, all in one day (after opening).
ACCOUNTS = max(400, accounts_for((2 * BATCHES + 2) * BATCH_SIZE))
PLATFORM_KEY, PARTNER_KEY = "bench-platform-key", "bench-partner-key"
Metadata = tuple[tuple[str, str], ...]


def timed(clients: int, work: list[Callable[[], object]]) -> tuple[float, list[float]]:
    """Runs the calls on `clients` threads; elapsed seconds and each call's latency."""
    latencies: list[float] = []

    def one(call: Callable[[], object]) -> None:
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, work))
    return time.perf_counter() - began, latencies


def gateway_config(root: Path, addresses: dict[str, str]) -> dict[str, str]:
    entry = RegionEntry(REGION, "Beijing", "北京", addresses["identity"], addresses["ingest"], addresses["ledger"], "")
    Registry("127.0.0.1:1", [entry]).save(root / "registry.json")
    limit = {"rate_per_s": 1_000_000, "burst": 1_000_000}
    callers = [
        {"id": "platform", "role": "platform", "platform": "alipay", "regions": [REGION],
         "keys": [{"sha256": key_digest_hex(PLATFORM_KEY)}], **limit},
        {"id": "metro", "role": "partner", "regions": [REGION], "keys": [{"sha256": key_digest_hex(PARTNER_KEY)}],
         **limit},
    ]  # fmt: skip
    (root / "callers.json").write_text(json.dumps({"callers": callers}))
    return {
        "CARBON_REGION": "000000",
        "CARBON_REGISTRY_FILE": str(root / "registry.json"),
        "CARBON_GATEWAY_CONFIG": str(root / "callers.json"),
        "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
        "CARBON_REDIS_URL": redis_url(),
        "CARBON_REDIS_PREFIX": f"bench:gw:{os.getpid()}:",
    }


def compare(direct: list[Callable[[], object]], through: list[Callable[[], object]], clients: int) -> dict[str, float]:
    """Both paths in two alternating rounds; calls per second and p99 of each."""
    half_d, half_t = len(direct) // 2, len(through) // 2
    d1, lat_d1 = timed(clients, direct[:half_d])
    t1, lat_t1 = timed(clients, through[:half_t])
    d2, lat_d2 = timed(clients, direct[half_d:])
    t2, lat_t2 = timed(clients, through[half_t:])
    direct_per_s, through_per_s = len(direct) / (d1 + d2), len(through) / (t1 + t2)
    return {
        "direct_per_s": round(direct_per_s, 1),
        "direct_p99_ms": p99_ms(lat_d1 + lat_d2),
        "gateway_per_s": round(through_per_s, 1),
        "gateway_p99_ms": p99_ms(lat_t1 + lat_t2),
        "ratio": round(through_per_s / direct_per_s, 2),
    }


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    with private_schemas("identity", "ledger", "ingest", "gateway") as urls, region(urls) as reg:
        addresses = {"identity": reg.processes[-2].address, "ledger": reg.processes[-1].address}
        addresses["ingest"] = reg.processes[0].address
        env = {**gateway_config(root, addresses), "CARBON_DATABASE_URL": urls["gateway"]}
        accounts = open_accounts(reg.identity, ACCOUNTS)
        now = datetime.now(UTC)  # the events happen after the accounts were opened and their consent granted
        secret = register_partner(reg.ingest)
        with service_process("gateway", env) as gateway, grpc.insecure_channel(gateway.address) as channel:
            gw_ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            gw_ingest = ingest_service_pb2_grpc.IngestServiceStub(channel)
            platform: Metadata = (("authorization", f"Bearer {PLATFORM_KEY}"),)
            partner: Metadata = (("authorization", f"Bearer {PARTNER_KEY}"), ("x-carbon-region", REGION))

            def read(stub: ledger_service_pb2_grpc.LedgerServiceStub, n: int, md: Metadata) -> Callable[[], object]:
                request = lpb.GetBalanceRequest(account=accounts[n % len(accounts)])
                return lambda: stub.GetBalance(request, metadata=md, timeout=30)

            for n in range(50):  # warm both paths: channels, connection pools, caches
                read(reg.ledger, n, ())()
                read(gw_ledger, n, platform)()
            total = CLIENTS * READS
            reads = compare(
                [read(reg.ledger, n, ()) for n in range(total)],
                [read(gw_ledger, n, platform) for n in range(total)],
                CLIENTS,
            )

            def submit(
                stub: ingest_service_pb2_grpc.IngestServiceStub, index: int, md: Metadata
            ) -> Callable[[], object]:
                batch = signed(trips(accounts, index * BATCH_SIZE, BATCH_SIZE, now), f"b{index}", secret)

                def call() -> None:
                    results = stub.SubmitEvents(batch, metadata=md, timeout=120).results
                    assert all(result.points > 0 for result in results), results[:3]

                return call

            submit(reg.ingest, 2 * BATCHES, ())()  # warm both paths: the partner's key, rules, caches
            submit(gw_ingest, 2 * BATCHES + 1, partner)()
            direct_batches = [submit(reg.ingest, i, ()) for i in range(BATCHES)]
            gateway_batches = [submit(gw_ingest, BATCHES + i, partner) for i in range(BATCHES)]
            submits = compare(direct_batches, gateway_batches, SUBMITTERS)
    figures = {
        "read_clients": CLIENTS,
        "reads_per_path": total,
        **{f"read_{key}": value for key, value in reads.items()},
        "batches_per_path": BATCHES,
        "batch_size": BATCH_SIZE,
        **{f"submit_{key}": value for key, value in submits.items()},
    }
    print(
        f"GetBalance: direct {reads['direct_per_s']}/s, through the gateway {reads['gateway_per_s']}/s"
        f" ({reads['ratio']}x); SubmitEvents x{BATCH_SIZE}: direct {submits['direct_per_s']} batches/s, through the"
        f" gateway {submits['gateway_per_s']} batches/s ({submits['ratio']}x)"
    )
    baseline = {"baseline": "the same calls straight to the region", "ratio": min(reads["ratio"], submits["ratio"])}
    print(json.dumps({**figures, **baseline}))


if __name__ == "__main__":
    main()
