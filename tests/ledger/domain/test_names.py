"""What a posting may name: this region's account numbers and the known system accounts."""

from __future__ import annotations

from ledger_svc.domain.names import account_problem
from tests.ledger.ledger_support import REGION, account_number

A = account_number(1)


def test_account_names_must_be_this_regions_numbers_or_known_system_accounts() -> None:
    assert account_problem(A, REGION) is None
    assert account_problem("system:issuance", REGION) is None
    assert account_problem("system:nope", REGION)
    assert account_problem(account_number(3, "110000"), REGION)
    assert account_problem(A[:-1] + str((int(A[-1]) + 1) % 10), REGION)
