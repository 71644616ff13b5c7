"""Campaign budget accounts (ADR 0115): funded from issuance, never negative, paying bonuses as a linked pair that
issues a fresh lot of the event's day."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger_svc.domain.names import account_problem
from ledger_svc.domain.time import to_us
from ledger_svc.domain.transfers import Status, TransferRequest
from ledger_svc.service import transfers
from ledger_svc.service.context import LedgerContext
from service_kit.accounts import campaign_account
from tests.ledger.ledger_support import (
    ISSUANCE,
    REGION,
    START,
    account_number,
    assert_conserved,
    available_points,
    earn,
)

BUDGET = campaign_account("0123456789abcdef")
A = account_number(1)
ADJUST, EARN = 7, 1


def bonus(transfer_id: str, points: int) -> list[TransferRequest]:
    return [
        TransferRequest(transfer_id + ":budget", BUDGET, ISSUANCE, points, ADJUST, linked=True),
        TransferRequest(transfer_id, ISSUANCE, A, points, EARN, earned_at_us=to_us(START - timedelta(days=3))),
    ]


def test_a_budget_pays_bonuses_until_spent_and_never_goes_negative(ledger: LedgerContext) -> None:
    (funded,) = transfers.post_transfers(ledger, [earn("fund", BUDGET, 100)])
    assert funded.status is Status.POSTED
    paid = transfers.post_transfers(ledger, bonus("b1", 60))
    refused = transfers.post_transfers(ledger, bonus("b2", 60))
    assert [r.status for r in paid] == [Status.POSTED, Status.POSTED]
    assert [r.failure_reason for r in refused] == ["INSUFFICIENT_POINTS", "LINKED_TRANSFER_FAILED"]
    assert available_points(ledger, BUDGET) == 40 and available_points(ledger, A) == 60
    (lot,) = paid[1].posting.credit_lots  # type: ignore[union-attr]
    assert lot.key.earned_on == (START - timedelta(days=3) + timedelta(hours=8)).date()  # the event's day
    assert_conserved(ledger)


@pytest.mark.parametrize("name", ["campaign:", "campaign:UPPER", "campaign:" + "x" * 24, "campaign:a_b"])
def test_only_well_formed_campaign_names_are_accounts(name: str) -> None:
    assert account_problem(name, REGION) is not None
    assert account_problem(BUDGET, REGION) is None
