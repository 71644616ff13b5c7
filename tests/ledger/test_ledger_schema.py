"""The ledger's schema: the migrations build what store/tables.py describes, the expiring-lots index follows
`has_points`, and on PostgreSQL a credit updates its account and lot in place (HOT, ADR 0104)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text

from ledger_svc.domain.lots import LotKey
from ledger_svc.domain.time import day_of, lot_expiry_us, to_us
from ledger_svc.service import ops, postings, reads
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import credits as credit_store
from ledger_svc.store.tables import lots, metadata
from tests.ledger.ledger_support import EXPIRY, START, MovableClock, account_number, earn, migrated_engine, spend

A = account_number(1)


def _not_a_version_table(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith("alembic_version"))


def test_migrations_build_the_tables_the_store_describes(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_a_version_table})
        assert compare_metadata(context, metadata) == []


def test_has_points_says_whether_a_lot_has_points_left(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 10)])
    assert _has_points(ledger) == [True]
    postings.post_transfers(ledger, [spend("s1", A, 10)])
    assert _has_points(ledger) == [False]
    postings.post_transfers(ledger, [earn("e2", A, 5)])
    assert _has_points(ledger) == [True]


def test_a_lot_refilled_after_its_sweep_is_swept_again(ledger: LedgerContext, clock: MovableClock) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 10, earned_at=START - timedelta(days=720))])
    postings.post_transfers(ledger, [spend("s1", A, 4)])
    clock.advance(days=20)
    assert ops.expire_points(ledger, None, 0, 0).points_expired == 6
    # A refund is not fresh: it restores the spent points to their original lot, expired or not.
    postings.refund_transfer(ledger, "r1", "s1", 0, "voucher failed")
    assert _has_points(ledger) == [True]
    again = ops.expire_points(ledger, None, 0, 0)
    assert (again.lots_expired, again.points_expired) == (1, 4)
    assert reads.get_balance(ledger, EXPIRY).total_points == 10


def _has_points(ledger: LedgerContext) -> list[bool]:
    with ledger.engine.connect() as conn:
        return [bool(flag) for flag in conn.execute(select(lots.c.has_points).where(lots.c.account == A)).scalars()]


@pytest.mark.postgres
def test_a_credit_to_an_account_and_a_lot_with_points_writes_no_index_entry(postgres_url: str) -> None:
    engine = migrated_engine(postgres_url)
    key = LotKey(A, lot_expiry_us(day_of(to_us(START)), 24), day_of(to_us(START)))
    with engine.begin() as conn:
        credit_store.credit_users(conn, {A: 10}, 0)
        credit_store.upsert_lots(conn, {key: 10})
    with engine.begin() as conn:
        credit_store.credit_users(conn, {A: 5}, 0)
        credit_store.upsert_lots(conn, {key: 5})
        # This transaction's own counts: heap-only (HOT) updates of each table.
        hot = conn.execute(
            text(
                "SELECT pg_stat_get_xact_tuples_hot_updated('accounts'::regclass),"
                " pg_stat_get_xact_tuples_hot_updated('lots'::regclass)"
            )
        ).one()
    engine.dispose()
    assert tuple(hot) == (1, 1)
