"""The ledger client: credits sent as columns stand for the field-by-field transfers, answered in the credits' order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ingest_svc.clients import CreditResult, EarnCredit, LedgerClient
from service_kit.accounts import ISSUANCE_ACCOUNT
from service_kit.wire import to_timestamp
from tests.ingest.ingest_harness import credit_transfers
from tests.ingest.stub_peers import CapturingLedger

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_credit_columns_stand_for_the_field_by_field_transfers() -> None:
    shared = {"partner_id": "metro", "behaviour": "transit_trip", "rule": "transit_trip@national@20240101T000000Z"}
    other = {"partner_id": "metro", "behaviour": "bike_km", "rule": "bike_km@110000@20240101T000000Z"}
    credits = [
        EarnCredit(f"earn-{n}", f"11000000000000{n:02d}", n + 1, AT - timedelta(minutes=n % 3), 7 * n, f"e{n}", m)
        # Each credit's metadata a tuple of its own: credits are grouped by its value, not by the object.
        for n, m in enumerate([tuple(d.items()) for d in (shared, other, shared, {}, other, shared)])
    ]
    client = LedgerClient("127.0.0.1:9")
    capturing = CapturingLedger(refuse=frozenset({"earn-4"}))
    client._stub = capturing  # type: ignore[assignment]

    results = client.credit(credits)

    # One group per distinct metadata, so the transfers come group by group: compared by id.
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
            metadata=dict(c.metadata),
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
