"""What the gateway's ClaimActivities sustains (issue 16: >= 50k fingerprints/s in batches of 500), against a
same-run baseline: the same rows inserted raw, batched, into the same PostgreSQL.

The gateway runs as a process (`python -m gateway`) on a private PostgreSQL schema; CARBON_BENCH_CLIENTS (default 2)
clients, each the service identity of a region's ingest, send CARBON_BENCH_BATCHES (default 60) batches of 500 fresh
fingerprints of today, each batch under an attempt id as ingest claims them while recording (ADR 0415). The
baseline inserts the same columns (day, fingerprint, key, region, partner, event id, time) into a plain table with
the same primary key, 500 rows per statement and commit, one connection per client. Both paths run in two
alternating rounds, so drift of the machine hits both. Last line: one JSON object with `claims_per_s`, `raw_per_s`
and `ratio` (claims / raw).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
from bench_ingest_support import claims_gateway_process, private_schemas
from sqlalchemy import create_engine, text

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from service_kit import identities
from service_kit.clock import china_day

CLIENTS = int(os.environ.get("CARBON_BENCH_CLIENTS", "2"))
BATCHES = int(os.environ.get("CARBON_BENCH_BATCHES", "60"))
BATCH_SIZE = 500
INGESTS = [identities.regional(code, "ingest") for code in ("110000", "330000")]
RAW_TABLE = (
    "CREATE TABLE raw_claims (day date NOT NULL, fingerprint bytea NOT NULL, key_id varchar(32) NOT NULL, "
    "region_code varchar(6) NOT NULL, partner_id varchar(64) NOT NULL, event_id varchar(128) NOT NULL, "
    "claimed_at timestamp NOT NULL, PRIMARY KEY (day, fingerprint))"
)
RAW_INSERT = text(
    "INSERT INTO raw_claims SELECT c.day, c.fingerprint, c.key_id, '110000', c.partner_id, c.event_id, :now "
    "FROM unnest(CAST(:days AS date[]), CAST(:fingerprints AS bytea[]), CAST(:key_ids AS text[]), "
    "CAST(:partner_ids AS text[]), CAST(:event_ids AS text[])) AS c(day, fingerprint, key_id, partner_id, event_id)"
)


def batches(path: str, count: int) -> list[gw.ClaimActivitiesRequest]:
    day = china_day(datetime.now(UTC)).isoformat()
    made = []
    for b in range(count):
        ids = [f"{path}-{b}-{i}" for i in range(BATCH_SIZE)]
        made.append(
            gw.ClaimActivitiesRequest(
                fingerprints=[hashlib.sha256(event_id.encode()).digest() for event_id in ids],
                key_ids=["e1"] * BATCH_SIZE,
                occurred_days=[day] * BATCH_SIZE,
                partner_ids=["metro"] * BATCH_SIZE,
                event_ids=ids,
                attempt_id=f"{path}-{b}",  # as ingest claims, while it records the batch (ADR 0415)
            )
        )
    return made


def timed(calls: list[Callable[[], object]]) -> float:
    """Fingerprints per second of `calls` (each one batch) over CLIENTS threads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda call: call(), calls))
    return len(calls) * BATCH_SIZE / (time.perf_counter() - started)


def main() -> None:
    with private_schemas("gateway", "raw") as urls:
        raw = create_engine(urls["raw"], pool_size=CLIENTS)
        with raw.begin() as conn:
            conn.execute(text(RAW_TABLE))
        with claims_gateway_process(urls["gateway"]) as gateway:
            channels = [bench_trust_support.channel(gateway.address, INGESTS[n % 2]) for n in range(CLIENTS)]
            stubs = [gateway_service_pb2_grpc.GatewayServiceStub(channel) for channel in channels]
            stubs[0].ClaimActivities(batches("warm", 1)[0], timeout=30)  # the day's partition, the channels
            claims = batches("claim", BATCHES)
            inserts = batches("raw", BATCHES)

            def claim(n: int) -> Callable[[], object]:
                return lambda: stubs[n % CLIENTS].ClaimActivities(claims[n], timeout=60)

            def insert(n: int) -> Callable[[], object]:
                request = inserts[n]
                params = {
                    "now": datetime.now(UTC).replace(tzinfo=None),
                    "days": [datetime.fromisoformat(d).date() for d in request.occurred_days],
                    "fingerprints": list(request.fingerprints),
                    "key_ids": list(request.key_ids),
                    "partner_ids": list(request.partner_ids),
                    "event_ids": list(request.event_ids),
                }

                def run() -> None:
                    with raw.begin() as conn:
                        conn.execute(RAW_INSERT, params)

                return run

            half = BATCHES // 2
            claim_rates, raw_rates = [], []
            for part in (range(half), range(half, BATCHES)):
                raw_rates.append(timed([insert(n) for n in part]))
                claim_rates.append(timed([claim(n) for n in part]))
            for channel in channels:
                channel.close()
        raw.dispose()
    claims_per_s, raw_per_s = sum(claim_rates) / 2, sum(raw_rates) / 2
    print(f"claims: {claims_per_s:,.0f} fingerprints/s  raw insert: {raw_per_s:,.0f} rows/s")
    figures = {
        "batch_size": BATCH_SIZE,
        "batches": BATCHES,
        "clients": CLIENTS,
        "claims_per_s": round(claims_per_s),
        "raw_per_s": round(raw_per_s),
        "load_1min": round(os.getloadavg()[0], 2),
        "ratio": round(claims_per_s / raw_per_s, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
