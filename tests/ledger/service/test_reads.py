"""Reads: balances, statements (paged, filtered), expiring points, and bad account names."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.time import to_us
from ledger_svc.service import holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import ISSUANCE, START, MovableClock, account_number, earn, spend

A = account_number(1)


def test_list_expiring_points_groups_by_expiry_day(ledger: LedgerContext) -> None:
    earned = START - timedelta(days=720)
    transfers.post_transfers(ledger, [earn("e1", A, 7, earned_at=earned), earn("e2", A, 100)])
    days = reads.list_expiring_points(ledger, A, 0)
    assert days == [((earned + timedelta(hours=8)).date().replace(year=earned.year + 2), 7)]
    assert reads.get_balance(ledger, A).expiring_within_30_days_points == 7


def test_statement_is_newest_first_paged_and_filtered(ledger: LedgerContext, clock: MovableClock) -> None:
    for index in range(5):
        transfers.post_transfers(ledger, [earn(f"e{index}", A, 10)])
        clock.advance(minutes=1)
    transfers.post_transfers(ledger, [spend("s1", A, 15)])
    first = reads.list_statement_entries(ledger, A, 4, "", [], 0, 0)
    assert [e.transfer_id for e in first.entries] == ["s1", "e4", "e3", "e2"]
    assert [e.balance_after_points for e in first.entries] == [35, 50, 40, 30]
    second = reads.list_statement_entries(ledger, A, 4, first.next_page_token, [], 0, 0)
    assert ([e.transfer_id for e in second.entries], second.next_page_token) == (["e1", "e0"], "")
    redeem_only = reads.list_statement_entries(ledger, A, 0, "", [2], 0, 0)
    assert [e.amount_points for e in redeem_only.entries] == [-15]
    window = reads.list_statement_entries(
        ledger, A, 0, "", [], to_us(START + timedelta(minutes=1)), to_us(START + timedelta(minutes=3))
    )
    assert [e.transfer_id for e in window.entries] == ["e2", "e1"]
    with pytest.raises(InvalidArgument) as bad_token:
        reads.list_statement_entries(ledger, A, 0, "garbage!", [], 0, 0)
    assert bad_token.value.field == "page_token"


def test_bad_account_names_are_invalid_argument_naming_the_field(ledger: LedgerContext) -> None:
    for bad in ("", "system:bank", account_number(5, "110000"), "3300000000000000"):
        with pytest.raises(InvalidArgument) as caught:
            reads.get_balance(ledger, bad)
        assert caught.value.field == "account"
    with pytest.raises(InvalidArgument) as hold_error:
        holds.hold(ledger, HoldRequest("h1", A, 0))
    assert hold_error.value.field == "amount_points"


def test_issuance_has_a_statement_newest_first(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", account_number(2), 20)])
    transfers.post_transfers(ledger, [earn("e3", A, 30)])
    entries = reads.list_statement_entries(ledger, ISSUANCE, 0, "", [], 0, 0).entries
    assert [(e.transfer_id, e.amount_points, e.counterparty_account) for e in entries] == [
        ("e3", -30, A),
        ("e2", -20, account_number(2)),
        ("e1", -10, A),
    ]


def test_a_balance_comes_from_one_snapshot_when_a_spend_commits_between_its_statements(
    pg_ledger: LedgerContext,
) -> None:
    # A balance once read the maintained sums, then the soon-expiring lots. At READ COMMITTED a spend committed
    # between the two showed in the lots and not the sums: 150 available, none expiring, which was never true. It
    # is one statement now; the spend commits after it, and the next balance shows it whole.
    # (PostgreSQL only: SQLite's reads are transactions that hold the write lock, so the spend would wait.)
    transfers.post_transfers(
        pg_ledger, [earn("soon", A, 100, earned_at=START - timedelta(days=720)), earn("later", A, 50)]
    )
    before = reads.get_balance(pg_ledger, A)
    assert (before.available_points, before.expiring_within_30_days_points) == (150, 100)
    armed = [True]

    def spend_after_the_first_statement(*_: object) -> None:
        if armed:
            armed.clear()
            transfers.post_transfers(pg_ledger, [spend("s1", A, 100)])  # first in, first out: the soon lot

    event.listen(pg_ledger.engine, "after_cursor_execute", spend_after_the_first_statement)
    during = reads.get_balance(pg_ledger, A)
    event.remove(pg_ledger.engine, "after_cursor_execute", spend_after_the_first_statement)
    assert not armed, "the spend ran"
    assert (during.available_points, during.expiring_within_30_days_points) == (150, 100)
    after = reads.get_balance(pg_ledger, A)
    assert (after.available_points, after.expiring_within_30_days_points) == (50, 0)
