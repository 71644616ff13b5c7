"""Settlement periods on both databases: the monthly close stores a month's figures once, they never change after,
late postings count in the first open month, and every month's figures equal an independent recount of the journal
(ADR 0110)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from ledger_svc.domain.jobs import Schedule
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.periods import PeriodFigures
from ledger_svc.domain.time import day_of
from ledger_svc.domain.transfers import TransferRequest
from ledger_svc.service import periods, scheduler, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.tables import closed_periods, journal_batches
from ledger_svc.store.tables import transfers as journal
from service_kit.accounts import DONATION_ACCOUNT, SYSTEM_PREFIX
from service_kit.clock import start_of_china_day
from service_kit.errors import FailedPrecondition, InvalidArgument
from tests.ledger.ledger_support import MovableClock, account_number, earn, spend

LI = account_number(11)
ZHAO = account_number(12)
MARCH, APRIL, MAY = (start_of_china_day(date(2026, month, 1)) for month in (3, 4, 5))


def trip(transfer_id: str, account: str, points: int, grams: int, behaviour: str = "transit_trip") -> TransferRequest:
    return earn(transfer_id, account, points, metadata=(("behaviour", behaviour),), co2e_grams=grams)


def donation(transfer_id: str, account: str, points: int) -> TransferRequest:
    return spend(transfer_id, account, points, credit=DONATION_ACCOUNT)._replace(code=int(TransferCode.DONATE))


def recount(ledger: LedgerContext) -> dict[str, dict[str, int]]:
    """Every journal entry's month by the rule stated in words (the first closed month at or after its posting month
    whose last block covers it, else the later of its posting month and the first open month), summed by hand."""
    with ledger.engine.connect() as conn:
        bounds = {row.period: row.last_block_no for row in conn.execute(select(closed_periods))}
        rows = conn.execute(
            select(journal, journal_batches.c.block_no).join(
                journal_batches, journal_batches.c.batch_id == journal.c.batch_id
            )
        ).all()
    first_open = max(bounds, default="0000-00")
    first_open = f"{int(first_open[:4]) + int(first_open[5:]) // 12:04d}-{int(first_open[5:]) % 12 + 1:02d}"
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        posted = day_of(row.posted_at_us).strftime("%Y-%m")
        block = row.block_no if row.block_no is not None else 2**62
        covering = [month for month, last in sorted(bounds.items()) if month >= posted and block <= last]
        if covering:
            month = covering[0]
        elif bounds and posted <= max(bounds):
            month = first_open
        else:
            month = posted
        sums = totals[month]
        sums["entries"] += 1
        sums["late"] += month != posted
        to_user = not row.credit_account.startswith(SYSTEM_PREFIX)
        sums[f"{TransferCode(row.code).name}:{'in' if to_user else 'out'}"] += row.amount_points
        if row.code == TransferCode.EARN:
            behaviour = json.loads(row.metadata_json or "{}").get("behaviour", "")
            sums[f"co2e:{behaviour}"] += row.co2e_grams
    return {month: {name: value for name, value in sums.items() if value} for month, sums in totals.items()}


def as_recounted(figures: PeriodFigures) -> dict[str, int]:
    sums = {
        "entries": figures.entries,
        "late": figures.late_entries,
        "EARN:in": figures.issued_points,
        "REDEEM:out": figures.redeemed_points,
        "DONATE:out": figures.donated_points,
    }
    sums.update({f"co2e:{b.behaviour}": b.co2e_grams for b in figures.by_behaviour})
    return {name: value for name, value in sums.items() if value}


def test_a_closed_month_keeps_its_figures_and_a_late_posting_counts_in_the_next_open_month(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    clock.now = MARCH + timedelta(days=3)
    transfers.post_transfers(
        ledger, [trip("t1", LI, 10, 120), trip("t2", ZHAO, 10, 120), trip("b1", LI, 5, 90, "bike")]
    )
    transfers.post_transfers(ledger, [spend("v1", LI, 8), donation("d1", ZHAO, 4)])
    clock.now = APRIL + timedelta(minutes=10)  # April's first postings come before March closes at 00:30
    transfers.post_transfers(ledger, [trip("t3", LI, 10, 120)])
    leader = scheduler.Scheduler(ledger, Schedule(), timedelta(seconds=30), holder="a")
    clock.now = APRIL + timedelta(minutes=31)
    assert leader.tick()
    march = periods.period_figures(ledger, 2026, 3)
    assert march.closed and (march.issued_points, march.redeemed_points, march.donated_points) == (25, 8, 4)
    assert [(b.behaviour, b.events, b.co2e_grams) for b in march.by_behaviour] == [
        ("transit_trip", 2, 240),
        ("bike", 1, 90),
    ]

    # A posting that committed after the close although stamped in March (a transaction under way at midnight), and
    # a correction for an event of March: both count in April; March's figures stay as stored.
    clock.now = APRIL - timedelta(seconds=1)
    transfers.post_transfers(ledger, [trip("late", ZHAO, 7, 60)])
    clock.now = APRIL + timedelta(days=2)
    transfers.post_transfers(ledger, [earn("fix", LI, 3, earned_at=MARCH + timedelta(days=20))])
    assert periods.period_figures(ledger, 2026, 3) == march == periods.recompute_figures(ledger, "2026-03")
    april = periods.period_figures(ledger, 2026, 4)
    assert not april.closed and (april.issued_points, april.entries, april.late_entries) == (20, 3, 1)
    # By day: the late posting on April's first day, so the days add up to the month.
    assert [(d.day, d.issued_points) for d in april.by_day] == [("2026-04-01", 17), ("2026-04-03", 3)]
    assert [(d.day, d.issued_points, d.redeemed_points, d.donated_points, d.co2e_grams) for d in march.by_day] == [
        ("2026-03-04", 25, 8, 4, 330)
    ]

    clock.now = MAY + timedelta(minutes=31)
    assert leader.tick()
    closed_april = periods.period_figures(ledger, 2026, 4)
    assert closed_april.closed and closed_april.issued_points == 20 and closed_april.late_entries == 1
    assert periods.period_figures(ledger, 2026, 5).entries == 0
    counted = recount(ledger)
    assert as_recounted(march) == counted["2026-03"]
    assert as_recounted(closed_april) == counted["2026-04"]


def test_a_month_closes_once_and_only_after_the_month_before(ledger: LedgerContext, clock: MovableClock) -> None:
    clock.now = MARCH + timedelta(days=1)
    transfers.post_transfers(ledger, [trip("t1", LI, 10, 120)])
    clock.now = MAY + timedelta(days=1)
    ledger.seal_everything()
    first = periods.close_month(ledger, "2026-03")
    with pytest.raises(FailedPrecondition) as again:
        periods.close_month(ledger, "2026-03")
    assert again.value.reason == "PERIOD_ALREADY_CLOSED"
    with pytest.raises(FailedPrecondition) as skipped:
        periods.close_month(ledger, "2026-05")
    assert (skipped.value.reason, skipped.value.metadata["next"]) == ("PERIOD_OUT_OF_ORDER", "2026-04")
    assert periods.close_through(ledger, "2026-03") == [], "a resumed close run finds the month closed"
    assert periods.period_figures(ledger, 2026, 3) == first


def test_the_scheduler_closes_the_months_it_missed_in_order(ledger: LedgerContext, clock: MovableClock) -> None:
    clock.now = MARCH + timedelta(days=1)
    transfers.post_transfers(ledger, [trip("t1", LI, 10, 120)])
    ledger.seal_everything()
    periods.close_month(ledger, "2026-02")
    clock.now = APRIL + timedelta(days=3)
    transfers.post_transfers(ledger, [trip("t2", LI, 6, 50)])
    clock.now = start_of_china_day(date(2026, 6, 2))  # every replica was down at the ends of March, April and May
    assert scheduler.Scheduler(ledger, Schedule(), timedelta(seconds=30), holder="a").tick()
    issued = {month: periods.period_figures(ledger, 2026, month) for month in (3, 4, 5)}
    assert {month: (f.closed, f.issued_points) for month, f in issued.items()} == {
        3: (True, 10),
        4: (True, 6),
        5: (True, 0),
    }


def test_a_month_after_the_current_one_has_no_figures(ledger: LedgerContext, clock: MovableClock) -> None:
    clock.now = MARCH + timedelta(days=1)
    with pytest.raises(InvalidArgument) as caught:
        periods.period_figures(ledger, 2026, 4)
    assert caught.value.metadata["field"] == "month"
