"""What a posting may name: this region's account numbers and the known system accounts."""

from __future__ import annotations

from ledger_svc.domain.names import account_problem
from service_kit.accounts import ISSUANCE_ACCOUNT, SYSTEM_ACCOUNTS, is_system_account
from tests.ledger.ledger_support import REGION, account_number

A = account_number(1)


def test_account_names_must_be_this_regions_numbers_or_known_system_accounts() -> None:
    assert account_problem(A, REGION) is None
    assert account_problem("system:issuance", REGION) is None
    assert account_problem("system:nope", REGION)
    assert account_problem(account_number(3, "110000"), REGION)
    assert account_problem(A[:-1] + str((int(A[-1]) + 1) % 10), REGION)


def test_only_the_named_system_accounts_are_system_accounts() -> None:
    for name in SYSTEM_ACCOUNTS:
        assert is_system_account(name) and account_problem(name, REGION) is None
    for name in ("system:bank", "system:", "system:issuance ", "", A, "SYSTEM:ISSUANCE"):
        assert not is_system_account(name)
    assert ISSUANCE_ACCOUNT == "system:issuance" and len(SYSTEM_ACCOUNTS) == 6
