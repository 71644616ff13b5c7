"""GetMonthlySummary on both databases: a month of earning, spending, giving and adjusting summed by kind, CO2e by
behaviour, the points about to expire, and every sum equal to the month's statement rows of that code."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pytest

from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.time import to_us
from ledger_svc.service import reads, refunds, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.accounts import ADJUSTMENT_ACCOUNT, DONATION_ACCOUNT
from service_kit.clock import start_of_china_day
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import MovableClock, account_number, assert_conserved, earn, spend

WANG = account_number(7)
MARCH, APRIL = start_of_china_day(date(2026, 3, 1)), start_of_china_day(date(2026, 4, 1))


def behaviour(name: str) -> tuple[tuple[str, str], ...]:
    return (("partner_id", "p"), ("behaviour", name))


def statement_sums(ledger: LedgerContext) -> dict[int, int]:
    """The month's ListStatementEntries rows, signed amounts summed by code."""
    sums: dict[int, int] = defaultdict(int)
    token = ""
    while True:
        page = reads.list_statement_entries(ledger, WANG, 100, token, [], to_us(MARCH), to_us(APRIL))
        for row in page.entries:
            sums[row.code] += row.amount_points
        token = page.next_page_token
        if not token:
            return sums


def test_ms_wangs_march_sums_equal_her_statement_and_show_co2e_by_behaviour(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    clock.now = MARCH - timedelta(hours=2)  # February: not in the summary
    transfers.post_transfers(ledger, [earn("feb", WANG, 500, metadata=behaviour("bike_km"), co2e_grams=900)])
    clock.now = MARCH + timedelta(days=2)
    trips = [earn(f"trip-{n}", WANG, 10, metadata=behaviour("transit_trip"), co2e_grams=120) for n in range(20)] + [
        earn("plate", WANG, 5, metadata=behaviour("clean_plate"), co2e_grams=300)
    ]
    transfers.post_transfers(ledger, trips)
    clock.now += timedelta(days=5)
    gift = spend("gift", WANG, 30, credit=DONATION_ACCOUNT)._replace(code=int(TransferCode.DONATE))
    transfers.post_transfers(ledger, [spend("voucher", WANG, 80), gift])
    refunds.refund_transfer(ledger, "voucher-back", "voucher", 20, "cancelled")
    adjust = spend("fix", WANG, 7, credit=ADJUSTMENT_ACCOUNT)._replace(code=int(TransferCode.ADJUST))
    transfers.post_transfers(ledger, [adjust])
    clock.now = APRIL + timedelta(hours=1)  # April: not in the summary either
    transfers.post_transfers(ledger, [earn("apr", WANG, 40, metadata=behaviour("transit_trip"), co2e_grams=50)])
    summary = reads.get_monthly_summary(ledger, WANG, 2026, 3)
    assert (summary.earned_points, summary.redeemed_points, summary.refunded_points) == (205, 80, 20)
    assert (summary.donated_points, summary.adjusted_points, summary.expired_points) == (30, -7, 0)
    assert summary.net_change_points == 205 - 80 + 20 - 30 - 7
    assert summary.co2e_grams == 20 * 120 + 300
    assert [(b.behaviour, b.events, b.points, b.co2e_grams) for b in summary.by_behaviour] == [
        ("transit_trip", 20, 200, 2400),
        ("clean_plate", 1, 5, 300),
    ]
    statement = statement_sums(ledger)
    assert statement[TransferCode.EARN] == summary.earned_points
    assert statement[TransferCode.REDEEM] == -summary.redeemed_points
    assert statement[TransferCode.REFUND] == summary.refunded_points
    assert statement[TransferCode.DONATE] == -summary.donated_points
    assert statement[TransferCode.ADJUST] == summary.adjusted_points
    assert sum(statement.values()) == summary.net_change_points
    assert_conserved(ledger)


def test_the_summary_lists_points_expiring_within_three_months(ledger: LedgerContext, clock: MovableClock) -> None:
    clock.now = MARCH
    soon = MARCH - timedelta(days=700)  # expires in about 30 days
    later = MARCH - timedelta(days=600)  # in about 130 days: beyond three months
    transfers.post_transfers(ledger, [earn("soon", WANG, 60, earned_at=soon), earn("later", WANG, 9, earned_at=later)])
    summary = reads.get_monthly_summary(ledger, WANG, 2026, 3)
    assert [points for _, points in summary.expiring] == [60]


@pytest.mark.parametrize(
    ("account", "year", "month", "field"),
    [(WANG, 2026, 4, "month"), (WANG, 2026, 13, "month"), (WANG, 1999, 1, "year"),
     (DONATION_ACCOUNT, 2026, 3, "account"), ("123", 2026, 3, "account")],
)  # fmt: skip
def test_a_bad_month_or_account_is_named(
    ledger: LedgerContext, clock: MovableClock, account: str, year: int, month: int, field: str
) -> None:
    clock.now = MARCH
    with pytest.raises(InvalidArgument) as caught:
        reads.get_monthly_summary(ledger, account, year, month)
    assert caught.value.field == field
