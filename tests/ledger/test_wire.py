"""Messages <-> domain values: results from a shared template are the results built field by field; transfers and
credit columns become the requests they stand for, field by field."""

from __future__ import annotations

from datetime import date

import pytest

from carbon.ledger.v1 import ledger_service_pb2 as pb
from ledger_svc import wire
from ledger_svc.domain.credits import CreditColumns, CreditFailure
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.transfers import CarriedLot, ItemResult, Posting, Status, TransferRequest
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import ISSUANCE, account_number

A = account_number(1)
B = account_number(2)


def test_results_filled_from_a_shared_template_are_the_results_built_field_by_field() -> None:
    day, at_us, until_us = date(2026, 3, 15), 1_773_000_000_123_456, 1_836_000_000_000_000
    results = [
        ItemResult("t1", Status.POSTED, posting=_posting("t1", at_us, Portion(LotKey(A, until_us, day), 10, 7))),
        ItemResult("t2", Status.ALREADY_POSTED, posting=_posting("t2", at_us, Portion(LotKey(B, until_us, day), 3, 8))),
        ItemResult("t3", Status.POSTED, posting=_posting("t3", 0, Portion(LotKey(A, 0, date(1970, 1, 1)), 0))),
        ItemResult("t4", Status.FAILED, "INVALID_AMOUNT", "amount_points must be positive"),
    ]
    response = pb.PostTransfersResponse()
    cache = wire.SubMessages()
    for result in results:
        wire.fill_result(response.results.add(), result, cache)
    expected = pb.PostTransfersResponse(results=[_result_field_by_field(result) for result in results])
    assert response.SerializeToString() == expected.SerializeToString()


def test_a_transfer_message_becomes_the_request_with_sorted_metadata() -> None:
    # Every field set, and to a value no other field of its type has: a request built by position in another order
    # differs from the one built by keyword.
    message = pb.Transfer(
        transfer_id="t1",
        debit_account=ISSUANCE,
        credit_account=A,
        amount_points=5,
        code=pb.TRANSFER_CODE_TRANSFER_IN,
        linked=True,
        carried_lots=[
            pb.LotPortion(earned_on=wire.proto_date(date(2025, 1, 2)), expires_at=wire.timestamp(7), amount_points=5)
        ],
        reference="event-1",
        co2e_grams=120,
        metadata={"rule": "r2", "behaviour": "metro", "引用": "x"},
    )
    message.earned_at.FromMicroseconds(1_773_000_000_123_456)
    request = wire.transfer_request(0, message)
    assert request == TransferRequest(
        transfer_id="t1",
        debit_account=ISSUANCE,
        credit_account=A,
        amount_points=5,
        code=6,
        linked=True,
        earned_at_us=1_773_000_000_123_456,
        carried_lots=(CarriedLot(date(2025, 1, 2), 7, 5),),
        reference="event-1",
        co2e_grams=120,
        metadata=tuple(sorted(message.metadata.items())),
    )


def test_credit_columns_become_the_requests_they_stand_for_field_by_field() -> None:
    group = pb.CreditGroup(
        debit_account=ISSUANCE,
        code=pb.TRANSFER_CODE_EARN,
        metadata={"rule": "r2", "behaviour": "metro"},
        transfer_ids=["t1", "t2"],
        credit_accounts=[A, B],
        amount_points=[5, 6],
        earned_at_us=[1_773_000_000_123_456, 0],
        references=["event-1", "event-2"],
        co2e_grams=[120, 130],
    )

    requests = wire.credit_requests(pb.PostCreditsRequest(groups=[group, group]))

    expected = [
        TransferRequest(
            transfer_id=transfer_id,
            debit_account=ISSUANCE,
            credit_account=account,
            amount_points=points,
            code=1,
            linked=False,
            earned_at_us=earned_at_us,
            carried_lots=(),
            reference=reference,
            co2e_grams=grams,
            metadata=(("behaviour", "metro"), ("rule", "r2")),
        )
        for transfer_id, account, points, earned_at_us, reference, grams in [
            ("t1", A, 5, 1_773_000_000_123_456, "event-1", 120),
            ("t2", B, 6, 0, "event-2", 130),
        ]
    ]
    assert requests == expected * 2
    assert all(type(request) is TransferRequest for request in requests)
    assert requests[0].credit_account == A and requests[1].reference == "event-2"


def test_credit_columns_of_different_lengths_name_the_short_column() -> None:
    group = pb.CreditGroup(debit_account=ISSUANCE, transfer_ids=["t1", "t2"], credit_accounts=[A])
    with pytest.raises(InvalidArgument) as raised:
        wire.credit_requests(pb.PostCreditsRequest(groups=[group]))
    assert raised.value.field == "groups[0].credit_accounts"


def test_the_columns_of_a_credit_batch_are_the_post_credits_response() -> None:
    columns = CreditColumns(
        [Status.POSTED, Status.FAILED, Status.ALREADY_POSTED],
        ["11", "", "7"],
        [1_773_000_000_123_456, 0, 1_772_000_000_000_000],
        [CreditFailure(1, "INVALID_AMOUNT", "amount_points must be positive")],
    )
    assert wire.post_credits_response(columns) == pb.PostCreditsResponse(
        statuses=[pb.TRANSFER_STATUS_POSTED, pb.TRANSFER_STATUS_FAILED, pb.TRANSFER_STATUS_ALREADY_POSTED],
        lot_ids=["11", "", "7"],
        posted_at_us=[1_773_000_000_123_456, 0, 1_772_000_000_000_000],
        failures=[pb.CreditFailure(index=1, reason="INVALID_AMOUNT", message="amount_points must be positive")],
    )


def _posting(transfer_id: str, posted_at_us: int, lot: Portion) -> Posting:
    return Posting(transfer_id, ISSUANCE, lot.key.account, 10, 1, posted_at_us, "f", credit_lots=[lot])


def _result_field_by_field(result: ItemResult) -> pb.TransferResult:
    message = pb.TransferResult(
        transfer_id=result.transfer_id,
        status=wire.STATUS[result.status],
        failure_reason=result.failure_reason,
        failure_message=result.failure_message,
    )
    if result.posting is not None:
        message.posted_at.CopyFrom(wire.timestamp(result.posting.posted_at_us))
        message.lots.extend(wire.portion_message(portion) for portion in result.lots)
    return message


def test_a_batch_of_new_credits_answers_every_status_posted() -> None:
    columns = CreditColumns([Status.POSTED] * 3, ["11", "12", "13"], [5, 5, 5], [])

    response = wire.post_credits_response(columns)

    assert list(response.statuses) == [wire.STATUS[status] for status in columns.statuses]
    assert response == pb.PostCreditsResponse(
        statuses=[pb.TRANSFER_STATUS_POSTED] * 3, lot_ids=["11", "12", "13"], posted_at_us=[5, 5, 5]
    )
