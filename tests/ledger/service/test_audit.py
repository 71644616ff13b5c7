"""VerifyJournal finds the first tampered block; CheckConservation notices."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from ledger_svc.service import audit, transfers
from ledger_svc.service.context import LedgerContext
from tests.ledger.ledger_support import account_number, earn

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
