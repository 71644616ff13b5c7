"""End-to-end ingest throughput vs raw batched inserts into the same PostgreSQL, measured in the same run.

partner client -> ingest (PostgreSQL) -> real identity (BatchResolveAccounts + CheckConsents) -> ledger credit.
The ledger is an in-process fake gRPC server until ledger_svc's servicer is committed (printed as "ledger").
Last line: one JSON object with the figures and "ratio".
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ingest"))
from conftest import FakeLedger

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2_grpc
from identity_svc.domain import id_check_char
from identity_svc.server import registrations as identity_registrations
from ingest_svc import server as ingest_server
from ingest_svc.wire import sign_request, timestamp
from service_kit.db import make_engine, migrate, normalize_url
from service_kit.server import Registration, start_server
from service_kit.settings import Settings

BATCH = 500
BATCHES = int(os.environ.get("CARBON_BENCH_BATCHES", "20"))
ACCOUNTS = 200


def schema_url(base: str, schema: str) -> str:
    return make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)


def main() -> None:
    base = normalize_url(os.environ.get("CARBON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    schemas = [f"bench_ingest_{uuid.uuid4().hex[:8]}", f"bench_raw_{uuid.uuid4().hex[:8]}"]
    with admin.connect() as conn:
        for schema in schemas:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        figures = run(base, schemas)
    finally:
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print(json.dumps(figures))


def run(base: str, schemas: list[str]) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp())
    identity_settings = Settings(service="identity_svc", region_code="110000", data_dir=tmp)
    identity_engine = make_engine(identity_settings.effective_database_url())
    migrate("identity_svc", identity_engine)
    identity = start_server(identity_settings, identity_registrations(identity_settings, identity_engine))
    ledger = FakeLedger()  # type: ignore[abstract]
    ledger_server = start_server(
        Settings(service="ledger_svc"),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, ledger, "ledger")],
    )
    engine = make_engine(schema_url(base, schemas[0]))
    migrate("ingest_svc", engine)
    settings = Settings(
        service="ingest_svc",
        region_code="110000",
        extra={"CARBON_IDENTITY_ADDRESS": identity.address, "CARBON_LEDGER_ADDRESS": ledger_server.address},
    )
    ingest = start_server(settings, ingest_server.registrations(settings, engine))
    stub = ingest_service_pb2_grpc.IngestServiceStub(grpc.insecure_channel(ingest.address))
    ids = identity_service_pb2_grpc.IdentityServiceStub(grpc.insecure_channel(identity.address))
    now = datetime.now(UTC)
    accounts = []
    for i in range(ACCOUNTS):
        first17 = f"110105198001{i // 28 + 1:02d}{i % 28 + 1:02d}"[:14] + f"{i % 1000:03d}"
        opened = ids.OpenAccount(
            ipb.OpenAccountRequest(
                request_id=f"open-{i}",
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                name="李明",
                id_number=first17 + id_check_char(first17),
                phone_number=f"139{i:08d}",
                binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=f"u{i}"),
            )
        )
        accounts.append(opened.account.account_number)
        ids.GrantConsent(
            ipb.GrantConsentRequest(
                request_id=f"c-{i}",
                account_number=opened.account.account_number,
                category=common_pb2.DATA_CATEGORY_TRANSIT,
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                recorded_by="alipay",
                effective_at=timestamp(now - timedelta(days=8)),
            )
        )
    secret = stub.RegisterPartner(
        pb.RegisterPartnerRequest(
            request_id="bench",
            partner=pb.Partner(
                partner_id="metro",
                name="Metro",
                kind=pb.PARTNER_KIND_TRANSIT_OPERATOR,
                allowed_behaviours=["transit_trip"],
                allowed_regions=["110000"],
            ),
        )
    ).secret
    requests = []
    for b in range(BATCHES):
        events = [
            pb.Event(
                event_id=f"e{b}-{i}",
                account=common_pb2.AccountRef(account_number=accounts[(b * BATCH + i) % ACCOUNTS]),
                behaviour="transit_trip",
                quantity_milli=1000,
                occurred_at=timestamp(now - timedelta(days=(b * BATCH + i) // (ACCOUNTS * 10) % 6, minutes=5)),
                region_code="110000",
            )
            for i in range(BATCH)
        ]
        requests.append(
            sign_request(pb.SubmitEventsRequest(partner_id="metro", batch_id=f"b{b}", events=events), "k1", secret)
        )
    latencies = []
    accepted = 0
    started = time.perf_counter()
    for request in requests:
        t0 = time.perf_counter()
        results = stub.SubmitEvents(request, timeout=60).results
        latencies.append(time.perf_counter() - t0)
        accepted += sum(1 for r in results if r.outcome == pb.EVENT_OUTCOME_ACCEPTED)
    e2e_s = time.perf_counter() - started
    raw_rate = raw_inserts(schema_url(base, schemas[1]), BATCH * BATCHES)
    for running in (ingest, identity, ledger_server):
        running.stop()
    engine.dispose()
    identity_engine.dispose()
    e2e_rate = accepted / e2e_s
    return {
        "events": BATCH * BATCHES,
        "accepted": accepted,
        "e2e_events_per_s": round(e2e_rate),
        "raw_insert_rows_per_s": round(raw_rate),
        "p99_batch_ms": round(statistics.quantiles(latencies, n=100)[98] * 1000, 1),
        "ledger": "fake in-process gRPC (ledger_svc not yet committed)",
        "ratio": round(e2e_rate / raw_rate, 3),
    }


def raw_inserts(url: str, rows: int) -> float:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE raw (partner_id text, event_id text, account text, points bigint, "
                "PRIMARY KEY (partner_id, event_id))"
            )
        )
    statement = text("INSERT INTO raw VALUES (:p, :e, :a, :n)")
    started = time.perf_counter()
    for b in range(0, rows, BATCH):
        with engine.begin() as conn:
            conn.execute(statement, [{"p": "metro", "e": f"e{i}", "a": "x", "n": 10} for i in range(b, b + BATCH)])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return rows / elapsed


if __name__ == "__main__":
    main()
