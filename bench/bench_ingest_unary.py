"""Single-event unary SubmitEvents from 32 concurrent partner clients: events/s and p99 latency.

The same deployment as bench_ingest.py (identity, ledger, ingest as processes on PostgreSQL + Redis); each call carries
one signed event, so every event pays a full RPC chain (ingest -> identity x2 -> ledger). CARBON_BENCH_PROFILE=<dir>
writes a py-spy profile per process. The baseline, on the same server in the same run after the services stopped:
pgbench simple-update TPS with as many clients (bench_baseline_support.py): one small write transaction per event
is what a single-event call asks of the database at least. Last line: one JSON object; "ratio" = events/s ÷ pgbench
TPS (higher is better).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bench_baseline_support import pgbench_tps  # type: ignore[import-not-found,unused-ignore]
from bench_ingest_support import (
    accounts_for,
    cpu_seconds,
    ledger_totals,
    open_accounts,
    p99_ms,
    private_schemas,
    profiled,
    region,
    register_partner,
    signed,
    trips,
)

from carbon.ingest.v1 import ingest_service_pb2 as pb

CLIENTS = 32
EVENTS = int(os.environ.get("CARBON_BENCH_EVENTS", "3000"))
ACCOUNTS = max(200, accounts_for(EVENTS))  # every event fits in one day's caps (all happen after opening)


def main() -> None:
    with private_schemas("ingest", "identity", "ledger", "baseline") as urls:
        figures = run(urls)
        baseline = pgbench_tps(urls["baseline"], CLIENTS)
    print(f"baseline: pgbench simple-update, {CLIENTS} clients: {baseline:10.0f} tps")
    events_per_s = figures["events_per_s"]
    assert isinstance(events_per_s, int)
    ratio = round(events_per_s / baseline, 4)
    print(json.dumps({**figures, "baseline_pgbench_tps": round(baseline, 1), "ratio": ratio}))


def run(urls: dict[str, str]) -> dict[str, object]:
    with region(urls) as services:
        accounts = open_accounts(services.identity, ACCOUNTS)
        now = datetime.now(UTC)  # the events happen after the accounts were opened and their consent granted
        secret = register_partner(services.ingest)
        requests = [signed([event], f"u{n}", secret) for n, event in enumerate(trips(accounts, 0, EVENTS, now))]
        services.ingest.SubmitEvents(requests[0], timeout=30)  # warm-up

        def submit(request: pb.SubmitEventsRequest) -> tuple[float, int]:
            t0 = time.perf_counter()
            (result,) = services.ingest.SubmitEvents(request, timeout=60).results
            return time.perf_counter() - t0, result.points

        cpu_before = cpu_seconds(services.processes)
        with profiled(services.processes, EVENTS / 150 + 2):
            started = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                outcomes = list(pool.map(submit, requests[1:]))
            elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(services.processes)
        balance_points, balanced = ledger_totals(services.ledger, accounts)
    rate = len(outcomes) / elapsed
    cpu_share = {name: round((cpu_after[name] - cpu_before[name]) / elapsed, 2) for name in cpu_before}
    print(f"single-event unary  : {rate:10.0f} events/s ({CLIENTS} concurrent clients, {len(outcomes)} events)")
    print(f"p99 latency         : {p99_ms([o[0] for o in outcomes])} ms; cores busy {cpu_share}")
    assert all(o[1] > 0 for o in outcomes), "every event earns points (none before its account was opened)"
    assert balance_points == sum(o[1] for o in outcomes) + 10 and balanced, "ledger holds what ingest reported"
    return {
        "clients": CLIENTS,
        "events": len(outcomes),
        "events_per_s": round(rate),
        "p99_ms": p99_ms([o[0] for o in outcomes]),
        "cores_busy": cpu_share,
    }


if __name__ == "__main__":
    main()
