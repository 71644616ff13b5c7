"""VerifyJournal finds the first tampered block; CheckConservation notices; the incremental check (per-block sums,
ADR 0129) answers what the full audit answers, and a row tampered after sealing is still found by the full audit."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from ledger_svc.service import audit, transfers
from ledger_svc.service.context import LedgerContext
from tests.ledger.ledger_support import account_number, assert_conserved, earn, spend

A = account_number(1)
B = account_number(2)


def test_verify_journal_finds_the_first_tampered_block(ledger: LedgerContext) -> None:
    for index in range(3):
        transfers.post_transfers(ledger, [earn(f"e{index}", A, 10), earn(f"f{index}", B, 1)])
    verified = audit.verify_journal(ledger)
    assert (verified.ok, verified.blocks_checked, verified.entries_checked) == (True, 3, 6)
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE transfers SET amount_points = 11 WHERE transfer_id = 'e1'"))
    broken = audit.verify_journal(ledger)
    assert (broken.ok, broken.first_broken_block) == (False, 2)
    assert not audit.check_conservation(ledger).balanced


def test_check_conservation_counts_the_accounts_whose_journal_differs_from_their_balance(
    ledger: LedgerContext,
) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", B, 5), earn("e3", A, 1)])
    assert audit.check_conservation(ledger).balanced
    with ledger.engine.begin() as conn:
        # The journal says A earned 2 more than its balance and issuance (a system account) issued 2 more.
        conn.execute(text("UPDATE transfers SET amount_points = 12 WHERE transfer_id = 'e1'"))
    checked = audit.check_conservation(ledger)
    assert "2 account balances differ from their journal entries" in checked.problems, checked.problems


def test_the_incremental_check_answers_what_the_full_audit_answers(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", B, 5)])
    transfers.post_transfers(ledger, [spend("s1", A, 4), earn("e3", B, 1)])
    ledger.seal_everything()
    transfers.post_transfers(ledger, [spend("s2", B, 2)])  # possibly not sealed yet: the tail
    assert_conserved(ledger)


def test_sealing_stores_each_blocks_system_sums(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", B, 5), spend("s1", A, 4)])
    ledger.seal_everything()
    with ledger.engine.connect() as conn:
        sums = conn.execute(text("SELECT account, net_points FROM journal_block_sums ORDER BY account")).all()
    assert [tuple(row) for row in sums] == [("system:issuance", -15), ("system:redemption", 4)]


def test_a_row_tampered_after_sealing_is_found_by_the_full_audit_only(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", B, 5)])
    ledger.seal_everything()
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE transfers SET amount_points = 12 WHERE transfer_id = 'e1'"))
    # The incremental check reads the sums stored when the block was sealed, not the row: the books still add up.
    assert audit.check_conservation_incremental(ledger).balanced
    full = audit.check_conservation(ledger)
    assert "2 account balances differ from their journal entries" in full.problems, full.problems
    assert not audit.verify_journal(ledger).ok


def test_a_balance_tampered_with_is_found_by_the_incremental_check(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", B, 5)])
    ledger.seal_everything()
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE system_balances SET balance_points = balance_points - 3"))
    checked = audit.check_conservation_incremental(ledger)
    assert not checked.balanced
    assert "1 account balances differ from their journal entries" in checked.problems, checked.problems


@pytest.mark.postgres
def test_verify_journal_waits_for_a_seal_under_way_and_checks_every_batch(pg_ledger: LedgerContext) -> None:
    ledger = pg_ledger
    # The connection closes first on the way out: a verification still waiting for its lock then ends too.
    with ThreadPoolExecutor(1) as pool, ledger.engine.connect() as sealing:
        # Another transaction sealing: it holds the chain head while the batches commit.
        sealing.execute(text("SELECT id FROM chain_head WHERE id = 1 FOR UPDATE"))
        sealing_pid = sealing.execute(text("SELECT pg_backend_pid()")).scalar_one()
        for index in range(3):
            transfers.post_transfers(ledger, [earn(f"e{index}", A, 10), earn(f"f{index}", B, 1)])
        verifying = pool.submit(audit.verify_journal, ledger)
        _wait_until(lambda: verifying.done() or _blocked_by(ledger, sealing_pid))
        sealing.rollback()
        verified = verifying.result(timeout=60)
    assert (verified.ok, verified.blocks_checked, verified.entries_checked) == (True, 3, 6)


def _blocked_by(ledger: LedgerContext, pid: int) -> bool:
    """Whether some backend waits for a lock the backend `pid` holds."""
    with ledger.engine.connect() as conn:
        blocked = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}
        ).scalar_one()
    return bool(blocked)


def _wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)
