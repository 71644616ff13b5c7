"""The per-event shortcuts of the submission path build exactly what the plain construction builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ingest_svc import server
from ingest_svc.clients import ISSUANCE_ACCOUNT, CreditResult, EarnCredit, LedgerClient
from ingest_svc.domain import events as ev
from ingest_svc.service import ACCEPTED, DUPLICATE, REJECTED, Result
from service_kit.wire import to_timestamp
from tests.ingest.ingest_harness import credit_transfers

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


class _CapturingLedger:
    """Answers PostCredits with every credit posted except those whose id is in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.request = lpb.PostCreditsRequest()
        self.refuse = refuse

    def PostCredits(self, request: lpb.PostCreditsRequest, timeout: float) -> lpb.PostCreditsResponse:
        self.request = request
        ids = [transfer_id for group in request.groups for transfer_id in group.transfer_ids]
        return lpb.PostCreditsResponse(
            statuses=[lpb.TRANSFER_STATUS_FAILED if i in self.refuse else lpb.TRANSFER_STATUS_POSTED for i in ids],
            lot_ids=["" if i in self.refuse else "7" for i in ids],
            posted_at_us=[0 if i in self.refuse else 1 for i in ids],
            failures=[
                lpb.CreditFailure(index=n, reason="UNKNOWN_ACCOUNT", message=f"{i}: no such account")
                for n, i in enumerate(ids)
                if i in self.refuse
            ],
        )


def test_credit_columns_stand_for_the_field_by_field_transfers() -> None:
    shared = {"partner_id": "metro", "behaviour": "transit_trip", "rule": "transit_trip@national@20240101T000000Z"}
    other = {"partner_id": "metro", "behaviour": "bike_km", "rule": "bike_km@110000@20240101T000000Z"}
    credits = [
        EarnCredit(f"earn-{n}", f"11000000000000{n:02d}", n + 1, AT - timedelta(minutes=n % 3), 7 * n, f"e{n}", m)
        for n, m in enumerate([shared, other, shared, {}, other, shared])
    ]
    client = LedgerClient("127.0.0.1:9")
    capturing = _CapturingLedger(refuse=frozenset({"earn-4"}))
    client._stub = capturing  # type: ignore[assignment]

    results = client.credit(credits)

    # One group per metadata mapping, so the transfers come group by group: compared by id.
    sent = {t.transfer_id: t for t in credit_transfers(capturing.request).transfers}
    assert len(capturing.request.groups) == 3
    assert sent == {
        c.transfer_id: lpb.Transfer(
            transfer_id=c.transfer_id,
            debit_account=ISSUANCE_ACCOUNT,
            credit_account=c.account_number,
            amount_points=c.points,
            code=lpb.TRANSFER_CODE_EARN,
            earned_at=to_timestamp(c.earned_at),
            reference=c.reference,
            co2e_grams=c.co2e_grams,
            metadata=c.metadata,
        )
        for c in credits
    }
    # Results in the order of the credits, the refused one with the ledger's reason.
    assert results == [
        CreditResult("earn-4", False, "UNKNOWN_ACCOUNT", "earn-4: no such account")
        if c.transfer_id == "earn-4"
        else CreditResult(c.transfer_id, True, "", "")
        for c in credits
    ]
    client.close()


def test_submit_response_built_in_place_is_the_message_per_result_response() -> None:
    results = [
        Result("e1", ACCEPTED, 3, 120, "earn-1"),
        Result("e2", ACCEPTED, 0, 0, "", ev.DAILY_CAP_REACHED, "daily cap of 10000 reached"),
        Result("e3", DUPLICATE, 3, 120, "earn-3", ev.DUPLICATE_EVENT, "first accepted at ...", ACCEPTED),
        Result("e4", DUPLICATE, 0, 0, "", ev.DUPLICATE_EVENT, "first accepted at ...", REJECTED),
        Result("e5", REJECTED, reason=ev.CONSENT_MISSING, message="no TRANSIT consent"),
        Result("e6", ""),
    ]

    built = server._response(results)

    # Built the plain way, every field given (the in-place builder leaves empty ones unset): the same message.
    expected = pb.SubmitEventsResponse(
        results=[
            pb.EventResult(
                event_id=r.event_id,
                outcome=server._outcome(r.outcome),
                points=r.points,
                co2e_grams=r.co2e_grams,
                ledger_transfer_id=r.transfer_id,
                reason=r.reason,
                message=r.message,
                first_outcome=server._outcome(r.first_outcome),
            )
            for r in results
        ]
    )
    assert built == expected
    assert built.SerializeToString() == expected.SerializeToString()
