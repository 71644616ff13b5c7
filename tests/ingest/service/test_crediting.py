"""Crediting: the credits asked of the ledger are the stored rows' plain credits, and credits the ledger refuses read
REJECTED now, on resubmission and when explained."""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy import Engine

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc import server
from ingest_svc.clients import EarnCredit
from ingest_svc.domain import events as ev
from ingest_svc.domain.event_rows import PENDING, transfer_id_for
from ingest_svc.domain.partners import Partner
from ingest_svc.service.crediting import earn_credits
from service_kit.partner_signing import sign_request
from service_kit.settings import Settings
from service_kit.wire import to_timestamp
from tests.ingest.examples import ACCOUNTS, NOW, rows_and_plain_rows
from tests.ingest.stub_peers import CapturingLedger, ConsentingIdentity


def test_credits_of_event_rows_are_the_plain_credits() -> None:
    rows, plain = rows_and_plain_rows()
    owed = [row for row in rows if row.status == PENDING]

    credits = earn_credits(owed)

    assert credits == [
        EarnCredit(
            transfer_id=p["transfer_id"],
            account_number=p["account_number"],
            points=p["points"],
            earned_at=p["occurred_at"],
            co2e_grams=p["co2e_grams"],
            reference=p["event_id"],
            metadata=(("partner_id", p["partner_id"]), ("behaviour", p["behaviour"]), ("rule", p["rule_version_id"])),
        )
        for p in plain
        if p["status"] == PENDING
    ]
    assert all(c.earned_at.tzinfo is UTC for c in credits)
    assert {type(c) for c in credits} == {EarnCredit}


def test_credits_the_ledger_refuses_read_rejected_now_and_on_resubmission(engine: Engine) -> None:
    settings = Settings(
        service="ingest_svc",
        region_code="110000",
        extra={"CARBON_IDENTITY_ADDRESS": "127.0.0.1:9", "CARBON_LEDGER_ADDRESS": "127.0.0.1:9"},
    )
    ingest = server.build(settings, engine, lambda: NOW)
    servicer = server.IngestServiceServicer(ingest)
    _, secret = ingest.partners.register(
        "reg-bus", Partner("bus-co", "bus-co", "TRANSIT_OPERATOR", ("transit_trip",), ("110000",), 0), {"transit_trip"}
    )
    ids = [f"e-{n}" for n in range(40)]  # enough for COPY on PostgreSQL
    refused = {transfer_id_for("bus-co", i, NOW) for i in ids[3::7]}
    ingest.identity._stub = ConsentingIdentity()  # type: ignore[assignment]
    ingest.ledger._stub = CapturingLedger(refuse=frozenset(refused))  # type: ignore[assignment]
    request = sign_request(
        pb.SubmitEventsRequest(
            partner_id="bus-co",
            batch_id="b-1",
            events=[
                pb.Event(
                    event_id=event_id,
                    account=common_pb2.AccountRef(account_number=ACCOUNTS[n % len(ACCOUNTS)]),
                    behaviour="transit_trip",
                    quantity_milli=1000,
                    occurred_at=to_timestamp(NOW - timedelta(minutes=n + 1)),
                    region_code="110000",
                )
                for n, event_id in enumerate(ids)
            ],
        ),
        "k1",
        secret,
    )
    first = list(servicer.SubmitEvents(request, None).results)  # type: ignore[arg-type]
    again = list(servicer.SubmitEvents(request, None).results)  # type: ignore[arg-type]
    explained = servicer.ExplainScore(
        pb.ExplainScoreRequest(partner_id="bus-co", event_id=ids[3]),
        None,  # type: ignore[arg-type]
    )

    def plain(event_id: str) -> pb.EventResult:
        transfer_id = transfer_id_for("bus-co", event_id, NOW)
        result = pb.EventResult(
            event_id=event_id,
            outcome=pb.EVENT_OUTCOME_ACCEPTED,
            points=10,
            co2e_grams=515,
            ledger_transfer_id=transfer_id,
        )
        if transfer_id in refused:
            result.outcome = pb.EVENT_OUTCOME_REJECTED
            result.reason = ev.LEDGER_REJECTED
            result.message = f"UNKNOWN_ACCOUNT: {transfer_id}: no such account"
        return result

    assert first == [plain(i) for i in ids]
    assert [(r.outcome, r.first_outcome) for r in again] == [
        (pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_REJECTED if i in ids[3::7] else pb.EVENT_OUTCOME_ACCEPTED)
        for i in ids
    ]
    assert explained.result.outcome == pb.EVENT_OUTCOME_REJECTED and explained.result.points == 10
