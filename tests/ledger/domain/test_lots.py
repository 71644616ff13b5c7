"""Lots: spending takes the soonest-expiring lot first; a hold's portions split FIFO."""

from __future__ import annotations

from datetime import date

from ledger_svc.domain.lots import LotKey, Portion, split_fifo
from ledger_svc.domain.time import to_us
from tests.ledger.ledger_support import START, account_number, account_with_lots

A = account_number(1)
NOW_US = to_us(START)


def test_spending_takes_soonest_expiring_lot_first() -> None:
    user = account_with_lots(A, (date(2025, 6, 1), 50), (date(2024, 12, 1), 30))
    portions = user.plan_fifo(40, NOW_US)
    assert [(portion.key.earned_on, portion.amount_points) for portion in portions] == [
        (date(2024, 12, 1), 30),
        (date(2025, 6, 1), 10),
    ]


def test_split_fifo_keeps_the_soonest_expiring_for_the_commit() -> None:
    early = Portion(LotKey(A, 1, date(2024, 1, 1)), 10, 1)
    late = Portion(LotKey(A, 2, date(2024, 1, 2)), 10, 2)
    taken, rest = split_fifo([late, early], 15)
    assert [(p.lot_id, p.amount_points) for p in taken] == [(1, 10), (2, 5)]
    assert [(p.lot_id, p.amount_points) for p in rest] == [(2, 5)]
