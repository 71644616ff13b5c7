"""VerifyJournal finds the first tampered block; CheckConservation notices."""

from __future__ import annotations

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
