"""The per-event shortcuts of storing and crediting events give exactly what the plain construction gives: event
rows, the COPY text, credits, and the results of credits the ledger refuses."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc import records, store, store_pg
from ingest_svc.clients import EarnCredit
from ingest_svc.domain import events as ev
from ingest_svc.domain.scoring import Score, score_events
from service_kit.partner_signing import sign_request
from service_kit.pg_copy import COPY_ESCAPES
from tests.ingest.test_ingest_event_shortcuts import ACCOUNTS, NOW, _valid_events

COLUMNS = store_pg._EVENT_COLUMNS.split(", ")


def _plain_row(batch_id: str, partner_id: str, score: Score, now: datetime, credit_batch_id: str) -> dict[str, Any]:
    valid, event = score.event, score.event.event
    assert event.occurred_at is not None
    digest = hashlib.sha256(f"{partner_id}\x1f{event.event_id}".encode()).hexdigest()
    return {
        "partner_id": partner_id,
        "event_id": event.event_id,
        "batch_id": batch_id,
        "account_number": score.account_number,
        "behaviour": event.behaviour,
        "region_code": event.region_code,
        "occurred_at": event.occurred_at.astimezone(UTC),
        "day": valid.day,
        "quantity_milli": event.quantity_milli,
        "tier": event.tier,
        "evidence_ref": event.evidence_ref,
        "rule_version_id": valid.rule.rule_version_id,
        "counted_before_milli": score.counted_before_milli,
        "counted_milli": score.counted_milli,
        "points": score.points,
        "co2e_grams": score.co2e_grams,
        "reason": score.reason,
        "message": score.message,
        "transfer_id": f"earn-{digest[:40]}",
        "status": store.PENDING if score.points > 0 else store.NO_CREDIT,
        "accepted_at": now.astimezone(UTC),
        "credit_batch_id": credit_batch_id if score.points > 0 else "",
    }


def _rows() -> tuple[dict[int, records.EventRow], list[dict[str, Any]]]:
    scores, _ = score_events([(v, ACCOUNTS[n % 3]) for n, v in enumerate(_valid_events())], {})
    batch_ids = [f"b-{n // 25}" for n in range(2 * len(scores))]
    indexes = list(range(1, 2 * len(scores), 2))
    now = NOW.astimezone(timezone(timedelta(hours=8)))
    rows = records.rows(batch_ids, "bus-co", zip(indexes, scores, strict=True), now, "cb-1")
    plain = [_plain_row(batch_ids[i], "bus-co", s, now, "cb-1") for i, s in zip(indexes, scores, strict=True)]
    return rows, plain


def test_event_rows_hold_the_plain_rows_values_in_column_order() -> None:
    rows, plain = _rows()

    assert [row._asdict() for row in rows.values()] == plain
    assert {type(row) for row in rows.values()} == {records.EventRow}
    assert list(records.EventRow._fields) == COLUMNS
    assert list(rows) == list(range(1, 2 * len(plain), 2))
    assert {row.status for row in rows.values()} == {store.PENDING, store.NO_CREDIT}
    # A row read back from the store maps to the same EventRow.
    assert [records.stored_row(p) for p in plain] == list(rows.values())


def _copied(rows: list[records.EventRow], monkeypatch: pytest.MonkeyPatch) -> str:
    written: list[str] = []

    class _Copy:
        def write(self, data: str) -> None:
            written.append(data)

    @contextlib.contextmanager
    def fake_copy_into(conn: object, statement: str) -> Iterator[_Copy]:
        assert statement == store_pg._COPY_EVENTS
        yield _Copy()

    monkeypatch.setattr(store_pg, "copy_into", fake_copy_into)
    store_pg.copy_events(None, rows)  # type: ignore[arg-type]
    return "".join(written)


def _plain_copy_text(rows: list[dict[str, Any]]) -> str:
    """COPY's text format, every free-text value escaped (a no-op where it holds no special character)."""
    free = ("partner_id", "event_id", "batch_id", "tier", "evidence_ref", "rule_version_id", "message")
    lines = []
    for row in rows:
        values = []
        for column in COLUMNS:
            value = row[column]
            if isinstance(value, date):
                value = value.isoformat()
            value = str(value)
            values.append(value.translate(COPY_ESCAPES) if column in free else value)
        lines.append("\t".join(values) + "\n")
    return "".join(lines)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"evidence_ref": "a\tb"},
        {"event_id": "back\\slash"},
        {"message": "two\nlines\r"},
        {"tier": "t\\t"},
        {"batch_id": "b\n"},
    ],
    ids=["plain", "tab", "backslash", "line-breaks", "escaped-looking", "batch-id"],
)
def test_the_copy_text_is_the_plainly_escaped_rows(changes: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    rows, plain = _rows()
    rows_list = list(rows.values())
    # The special characters in one row only (the check is per batch, the escapes per value).
    rows_list[3] = rows_list[3]._replace(**changes)  # type: ignore[arg-type]
    plain[3] = {**plain[3], **changes}

    assert _copied(rows_list, monkeypatch) == _plain_copy_text(plain)


def test_credits_of_event_rows_are_the_plain_credits() -> None:
    rows, plain = _rows()
    owed = [row for row in rows.values() if row.status == store.PENDING]

    credits = records.credits(owed)

    assert credits == [
        EarnCredit(
            p["transfer_id"],
            p["account_number"],
            p["points"],
            p["occurred_at"],
            p["co2e_grams"],
            p["event_id"],
            {"partner_id": p["partner_id"], "behaviour": p["behaviour"], "rule": p["rule_version_id"]},
        )
        for p in plain
        if p["status"] == store.PENDING
    ]
    assert all(c.earned_at.tzinfo is UTC for c in credits)
    assert {type(c) for c in credits} == {EarnCredit}


class _Consenting:
    """Identity's CheckConsentColumns answering yes to every question."""

    def CheckConsentColumns(self, request: Any, timeout: float) -> Any:
        from carbon.identity.v1 import identity_service_pb2 as ipb

        count = len(request.account_numbers)
        return ipb.CheckConsentColumnsResponse(allowed=[True] * count, reasons=[""] * count)


def test_credits_the_ledger_refuses_read_rejected_now_and_on_resubmission(database_url: str) -> None:
    from ingest_svc import server
    from ingest_svc.domain.partners import Partner
    from service_kit.db import make_engine, migrate
    from service_kit.settings import Settings
    from service_kit.wire import to_timestamp
    from tests.ingest.test_ingest_hot_path import _CapturingLedger

    engine = make_engine(database_url)
    migrate("ingest_svc", engine)
    settings = Settings(
        service="ingest_svc",
        region_code="110000",
        extra={"CARBON_IDENTITY_ADDRESS": "127.0.0.1:9", "CARBON_LEDGER_ADDRESS": "127.0.0.1:9"},
    )
    submissions, rules, partners = server.build(settings, engine, lambda: NOW)
    servicer = server.IngestServiceServicer(submissions, rules, partners)
    _, secret = partners.register(
        "reg-bus", Partner("bus-co", "bus-co", "TRANSIT_OPERATOR", ("transit_trip",), ("110000",), 0), {"transit_trip"}
    )
    ids = [f"e-{n}" for n in range(40)]  # enough for COPY on PostgreSQL
    refused = {records.transfer_id_for("bus-co", i) for i in ids[3::7]}
    ledger = _CapturingLedger(refuse=frozenset(refused))
    submissions._identity._stub = _Consenting()  # type: ignore[assignment]
    submissions._ledger._stub = ledger  # type: ignore[assignment]
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
    try:
        first = list(servicer.SubmitEvents(request, None).results)  # type: ignore[arg-type]
        again = list(servicer.SubmitEvents(request, None).results)  # type: ignore[arg-type]
        explained = servicer.ExplainScore(
            pb.ExplainScoreRequest(partner_id="bus-co", event_id=ids[3]),
            None,  # type: ignore[arg-type]
        )
    finally:
        engine.dispose()

    def plain(event_id: str) -> pb.EventResult:
        transfer_id = records.transfer_id_for("bus-co", event_id)
        if transfer_id in refused:
            return pb.EventResult(
                event_id=event_id,
                outcome=pb.EVENT_OUTCOME_REJECTED,
                points=10,
                co2e_grams=515,
                ledger_transfer_id=transfer_id,
                reason=ev.LEDGER_REJECTED,
                message=f"UNKNOWN_ACCOUNT: {transfer_id}: no such account",
            )
        return pb.EventResult(
            event_id=event_id,
            outcome=pb.EVENT_OUTCOME_ACCEPTED,
            points=10,
            co2e_grams=515,
            ledger_transfer_id=transfer_id,
        )

    assert first == [plain(i) for i in ids]
    assert [(r.outcome, r.first_outcome) for r in again] == [
        (pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_REJECTED if i in ids[3::7] else pb.EVENT_OUTCOME_ACCEPTED)
        for i in ids
    ]
    assert explained.result.outcome == pb.EVENT_OUTCOME_REJECTED and explained.result.points == 10
