"""GetExpiringAhead on both databases: the points left in lots, by the month they expire in, from now on."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ledger_svc.service import expiring_ahead, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.clock import start_of_china_day
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import START, MovableClock, account_number, earn, spend

A = account_number(21)
B = account_number(22)


def test_points_left_in_lots_are_summed_by_the_month_they_expire_in(ledger: LedgerContext, clock: MovableClock) -> None:
    earned = [
        ("gone", A, 7, date(2024, 3, 10)),
        ("march", A, 10, date(2024, 3, 20)),
        ("may-a", A, 20, date(2024, 5, 2)),
    ]
    earned += [("may-b", B, 5, date(2024, 5, 10)), ("later", B, 40, date(2025, 1, 5))]
    for transfer_id, account, points, day in earned:
        clock.now = start_of_china_day(day) + timedelta(hours=9)
        transfers.post_transfers(ledger, [earn(transfer_id, account, points)])
    clock.now = START  # 2026-03-15: the lot earned on 2024-03-10 expired five days ago (not swept yet)
    transfers.post_transfers(ledger, [spend("coffee", A, 4)])  # taken from the soonest live lot, March's

    months = expiring_ahead.expiring_ahead(ledger, 3)

    assert [(m.period, m.amount_points, m.lots) for m in months] == [
        ("2026-03", 6, 1),
        ("2026-04", 0, 0),
        ("2026-05", 25, 2),
    ]
    assert sum(m.amount_points for m in expiring_ahead.expiring_ahead(ledger, 0)) == 71, "12 months reach 2027-01"


def test_more_than_three_years_ahead_is_refused(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument) as caught:
        expiring_ahead.expiring_ahead(ledger, 37)
    assert caught.value.metadata["field"] == "months_ahead"
