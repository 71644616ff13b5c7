"""Cross-region transfers per second through the gateway vs in-region hold+commit pairs, same run, PostgreSQL.

The gateway (`python -m gateway`) and both regions' ledgers (`python -m ledger_svc`) run as processes on PostgreSQL
(CARBON_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test), each in a schema of its own that is
dropped afterwards; identity runs in-process. 16 concurrent clients (CARBON_BENCH_CLIENTS) each make
CARBON_BENCH_TRANSFERS transfers (default 40); the baseline is the same number of Hold + CommitHold pairs sent
straight to region A's ledger by as many clients. Last line: one JSON object with the figures and "ratio"
(cross-region time / in-region time).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from service_kit.db import normalize_url
from tests.gateway.federation import Federation

URL = normalize_url(os.environ.get("CARBON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
CLIENTS = int(os.environ.get("CARBON_BENCH_CLIENTS", "16"))
PER_CLIENT = int(os.environ.get("CARBON_BENCH_TRANSFERS", "40"))
REGIONS = ["330000", "110000"]


def schema_url(schema: str) -> str:
    return make_url(URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def p99_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return round(ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000, 1)


def timed(
    clients: int, work: list[list[tuple[str, ...]]], one: Callable[[tuple[str, ...]], None]
) -> tuple[float, list[float]]:
    latencies: list[float] = []

    def run(items: list[tuple[str, ...]]) -> None:
        for item in items:
            began = time.perf_counter()
            one(item)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, work))
    return time.perf_counter() - began, latencies


def main() -> None:
    tag = uuid.uuid4().hex[:8]
    schemas = {name: f"bench_gw_{name}_{tag}" for name in ["gateway", *REGIONS]}
    admin = create_engine(URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for schema in schemas.values():
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    root = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    fed = Federation(
        root,
        REGIONS,
        gateway_db_url=schema_url(schemas["gateway"]),
        ledger_db_urls={code: schema_url(schemas[code]) for code in REGIONS},
    )
    try:
        fed.start_gateway(CARBON_GATEWAY_CALL_TIMEOUT_MS="5000", CARBON_GATEWAY_MARGIN_MS="2000")
        pairs = [(source, target) for source, target in (fed.open_person(REGIONS) for _ in range(CLIENTS))]
        for source, _ in pairs:
            fed.earn("330000", source, 10 * CLIENTS * PER_CLIENT * 4)
        total = CLIENTS * PER_CLIENT

        xrt_work: list[list[tuple[str, ...]]] = [
            [(f"b{tag}-{c}-{i}", *pairs[c]) for i in range(PER_CLIENT)] for c in range(CLIENTS)
        ]

        def cross(item: tuple[str, ...]) -> None:
            transfer_id, source, target = item
            result = fed.transfer(transfer_id, source, target, 10)
            assert result.state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED, result

        ledger = fed.ledger("330000")
        timeout = Duration(seconds=60)

        def pair(item: tuple[str, ...]) -> None:
            hold_id, source = item
            ledger.Hold(
                lpb.HoldRequest(hold_id=hold_id, account=source, amount_points=10, timeout=timeout,
                                code=lpb.TRANSFER_CODE_REDEEM), timeout=10,
            )  # fmt: skip
            ledger.CommitHold(lpb.CommitHoldRequest(hold_id=hold_id, credit_account="system:redemption"), timeout=10)

        base_work: list[list[tuple[str, ...]]] = [
            [(f"h{tag}-{c}-{i}", pairs[c][0]) for i in range(PER_CLIENT)] for c in range(CLIENTS)
        ]
        base_s, base_lat = timed(CLIENTS, base_work, pair)
        xrt_s, xrt_lat = timed(CLIENTS, xrt_work, cross)
        assert fed.clearing_sum() == 0 and all(fed.conserved(code) for code in REGIONS)
        figures = {
            "clients": CLIENTS,
            "transfers": total,
            "cross_region_per_s": round(total / xrt_s, 1),
            "cross_region_p99_ms": p99_ms(xrt_lat),
            "in_region_pairs_per_s": round(total / base_s, 1),
            "in_region_p99_ms": p99_ms(base_lat),
            "ratio": round(xrt_s / base_s, 2),
        }
        print(
            f"cross-region: {figures['cross_region_per_s']}/s p99 {figures['cross_region_p99_ms']} ms; in-region"
            f" hold+commit: {figures['in_region_pairs_per_s']}/s p99 {figures['in_region_p99_ms']} ms"
        )
        print(json.dumps(figures))
    finally:
        fed.close()
        with admin.connect() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
