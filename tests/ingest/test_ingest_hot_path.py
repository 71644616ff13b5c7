"""The per-event shortcuts of the submission path build exactly what the plain construction builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ingest_svc import server
from ingest_svc.clients import ISSUANCE_ACCOUNT, EarnCredit, LedgerClient
from ingest_svc.domain import events as ev
from ingest_svc.service import ACCEPTED, DUPLICATE, REJECTED, Result
from service_kit.wire import to_timestamp

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


class _CapturingLedger:
    def __init__(self) -> None:
        self.request = lpb.PostTransfersRequest()

    def PostTransfers(self, request: lpb.PostTransfersRequest, timeout: float) -> lpb.PostTransfersResponse:
        self.request = request
        return lpb.PostTransfersResponse(
            results=[
                lpb.TransferResult(transfer_id=t.transfer_id, status=lpb.TRANSFER_STATUS_POSTED)
                for t in request.transfers
            ]
        )


def test_credit_request_from_templates_is_the_field_by_field_request() -> None:
    shared = {"partner_id": "metro", "behaviour": "transit_trip", "rule": "transit_trip@national@20240101T000000Z"}
    other = {"partner_id": "metro", "behaviour": "bike_km", "rule": "bike_km@110000@20240101T000000Z"}
    credits = [
        EarnCredit(f"earn-{n}", f"11000000000000{n:02d}", n + 1, AT - timedelta(minutes=n % 3), 7 * n, f"e{n}", m)
        for n, m in enumerate([shared, other, shared, {}, other, shared])
    ]
    client = LedgerClient("127.0.0.1:9")
    capturing = _CapturingLedger()
    client._stub = capturing  # type: ignore[assignment]

    results = client.credit(credits)

    expected = lpb.PostTransfersRequest(
        transfers=[
            lpb.Transfer(
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
        ]
    )
    assert capturing.request == expected
    # Deterministic bytes: without it the metadata map's entries come in hash order, which varies between maps
    # however they are built (it did before this shortcut too; the ledger reads the map by sorted keys).
    assert capturing.request.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert [(r.transfer_id, r.credited) for r in results] == [(c.transfer_id, True) for c in credits]
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
