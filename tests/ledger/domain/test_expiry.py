"""The expiry sweep's transfers: one per lot in lot key order, the same on both paths, with the JSON fingerprint."""

from __future__ import annotations

from datetime import date

from ledger_svc.domain.expiry import (
    ExpiringLot,
    expire_fingerprint,
    expiry_entries_hash,
    expiry_entry,
    expiry_posting,
    expiry_transfers,
)
from ledger_svc.domain.fingerprints import fingerprint_of
from ledger_svc.domain.journal import entries_hash, entry_of
from ledger_svc.domain.lots import LotKey, Portion, UserAccount
from ledger_svc.domain.transfers import Posting
from service_kit.accounts import EXPIRY_ACCOUNT
from tests.ledger.ledger_support import account_number

A, B = account_number(1), account_number(2)
NOW_US = 1_773_000_000_000_000


def test_the_expiry_fingerprint_is_the_general_one() -> None:
    for transfer_id, points in [("expire:12:0", 30), ("expire:9876543210:45", 1), ("expire:1:0", 10**15)]:
        assert expire_fingerprint(transfer_id, points) == fingerprint_of(["expire", transfer_id, points])


def test_expiry_transfers_come_in_lot_key_order_each_with_the_balance_after_it() -> None:
    users = {A: UserAccount(A, 100, 10), B: UserAccount(B, 50, 0)}
    lots = [
        ExpiringLot(
            lot_id=7, account=A, expires_at_us=NOW_US - 5, earned_on=date(2024, 3, 1), points=30, expired_before=0
        ),
        ExpiringLot(
            lot_id=3, account=B, expires_at_us=NOW_US - 9, earned_on=date(2024, 2, 1), points=50, expired_before=4
        ),
        ExpiringLot(
            lot_id=5, account=A, expires_at_us=NOW_US - 9, earned_on=date(2024, 2, 1), points=60, expired_before=0
        ),
    ]

    transfers = expiry_transfers(lots, users, NOW_US)

    assert [(t.transfer_id, t.reference, t.debit_balance_after) for t in transfers] == [
        ("expire:5:0", "lot:5", 40),
        ("expire:7:0", "lot:7", 10),
        ("expire:3:4", "lot:3", 0),
    ]
    assert [t.fingerprint for t in transfers] == [
        fingerprint_of(["expire", t.transfer_id, t.lot.points]) for t in transfers
    ]
    assert (users[A].balance_points, users[B].balance_points) == (10, 0)


def test_an_expiry_posting_is_its_entry_with_the_lot_it_empties() -> None:
    lot = ExpiringLot(
        lot_id=5, account=A, expires_at_us=NOW_US - 9, earned_on=date(2024, 2, 1), points=60, expired_before=2
    )
    (transfer,) = expiry_transfers([lot], {A: UserAccount(A, 100, 0)}, NOW_US)

    posting = expiry_posting(transfer, NOW_US)

    assert entry_of(posting) == expiry_entry(transfer, NOW_US)
    assert posting == Posting(
        transfer_id="expire:5:2",
        debit_account=A,
        credit_account=EXPIRY_ACCOUNT,
        amount_points=60,
        code=3,
        posted_at_us=NOW_US,
        fingerprint=fingerprint_of(["expire", "expire:5:2", 60]),
        reference="lot:5",
        debit_balance_after=40,
        debit_lots=[Portion(LotKey(A, NOW_US - 9, date(2024, 2, 1)), 60, 5)],
    )


def test_the_expiry_batch_hash_is_the_general_one() -> None:
    """The set-based sweep's direct formatting hashes the same bytes as `entries_hash` of the entries (ADR 0133)."""
    for accounts in ([A, B, account_number(123456)], [A, "居民-1"]):
        users = {account: UserAccount(account, 10**16, 0) for account in accounts}
        lots = [
            ExpiringLot(
                lot_id=n * 7919,
                account=accounts[n % len(accounts)],
                expires_at_us=NOW_US - n,
                earned_on=date(2024, 1, 1),
                points=n**3 + 1,
                expired_before=n % 3,
            )
            for n in range(50)
        ]
        transfers = expiry_transfers(lots, users, NOW_US)
        general = entries_hash([expiry_entry(transfer, NOW_US) for transfer in transfers])
        assert expiry_entries_hash(transfers, NOW_US) == general
