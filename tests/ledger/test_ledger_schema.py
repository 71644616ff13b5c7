"""The ledger's schema: the migrations build what store/tables.py describes, the expiring-lots index follows
`has_points`, on PostgreSQL a credit updates its account and lot in place (HOT, ADR 0104) and issuance's debits
are left out of ix_transfers_debit while user accounts' statements still use it (ADR 0105)."""

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
from ledger_svc.store import reads as read_store
from ledger_svc.store.tables import lots, metadata
from tests.ledger.ledger_support import (
    EXPIRY,
    ISSUANCE,
    REGION,
    START,
    MovableClock,
    account_number,
    earn,
    migrated_engine,
    spend,
)

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


def test_issuance_has_a_statement_newest_first(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 10), earn("e2", account_number(2), 20)])
    postings.post_transfers(ledger, [earn("e3", A, 30)])
    entries = reads.list_statement_entries(ledger, ISSUANCE, 0, "", [], 0, 0).entries
    assert [(e.transfer_id, e.amount_points, e.counterparty_account) for e in entries] == [
        ("e3", -30, A),
        ("e2", -20, account_number(2)),
        ("e1", -10, A),
    ]


@pytest.mark.postgres
def test_a_user_statement_finds_its_debits_through_the_partial_index(postgres_url: str) -> None:
    ledger = LedgerContext(migrated_engine(postgres_url), REGION, MovableClock())
    postings.post_transfers(ledger, [earn("e1", A, 10)])
    postings.post_transfers(ledger, [spend("s1", A, 4)])
    query = read_store.statement_query(A, 51, None, [], 0, 0)
    sql = str(query.compile(ledger.engine, compile_kwargs={"literal_binds": True}))
    with ledger.engine.begin() as conn:
        # The plan for any account (generic, as a prepared statement may get): the index serves it only if the
        # query itself implies the index's predicate. Tiny tables read sequentially otherwise; without sequential
        # and plain index scans only the two account indexes can serve the OR.
        conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        conn.execute(text("PREPARE statement_of(varchar) AS " + sql.replace(f"'{A}'", "$1")))
        plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN EXECUTE statement_of('{A}')")))
        conn.execute(text("DEALLOCATE statement_of"))
        entries = read_store.statement(conn, A, 51, None, [], 0, 0)
    ledger.engine.dispose()
    assert "ix_transfers_debit" in plan and "ix_transfers_credit" in plan, plan
    assert [e.transfer_id for e in entries] == ["s1", "e1"]
