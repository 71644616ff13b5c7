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
from ledger_svc.service import transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import pg_credits as credit_store
from ledger_svc.store import statement as statement_store
from ledger_svc.store.tables import STATEMENT_BUCKET_BITS, in_both, metadata
from tests.ledger.ledger_support import REGION, START, MovableClock, account_number, earn, migrated_engine, spend

A = account_number(1)


def _not_a_version_table(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith("alembic_version"))


# SQLite's reflection cannot compare an expression index: the next test checks that one on both databases.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrations_build_the_tables_the_store_describes(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_a_version_table})
        assert compare_metadata(context, metadata) == []


def test_the_statement_index_is_keyed_by_the_bucket_width_the_store_reads_by(engine: Engine) -> None:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            found = "SELECT indexdef FROM pg_indexes WHERE indexname = :name AND schemaname = current_schema()"
        else:
            found = "SELECT sql FROM sqlite_master WHERE name = :name"
        definition = conn.execute(text(found), {"name": "ix_transfers_credit"}).scalar_one()
    # PostgreSQL writes the expression in one more pair of parentheses than SQLite keeps.
    key = definition.replace(f"((seq >> {STATEMENT_BUCKET_BITS}))", f"(seq >> {STATEMENT_BUCKET_BITS})")
    assert f"(seq >> {STATEMENT_BUCKET_BITS}), credit_account, seq)" in key, definition


def test_has_points_says_whether_a_lot_has_points_left(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10)])
    assert _has_points(ledger) == [True]
    transfers.post_transfers(ledger, [spend("s1", A, 10)])
    assert _has_points(ledger) == [False]
    transfers.post_transfers(ledger, [earn("e2", A, 5)])
    assert _has_points(ledger) == [True]


def _has_points(ledger: LedgerContext) -> list[bool]:
    with ledger.engine.connect() as conn:
        flags = in_both(lambda table: select(table.c.has_points).where(table.c.account == A))
        return [bool(flag) for flag in conn.execute(flags).scalars()]


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["recent_lots", "lots"])
def test_a_credit_to_an_account_and_a_lot_with_points_writes_no_index_entry(postgres_url: str, table: str) -> None:
    engine = migrated_engine(postgres_url)
    key = LotKey(A, lot_expiry_us(day_of(to_us(START)), 24), day_of(to_us(START)))
    # Where the lot goes is the account's moved-through day's to say (ADR 0137): before the lot's day, or its day.
    moved_through = {A: key.earned_on - timedelta(days=1) if table == "recent_lots" else key.earned_on}
    with engine.begin() as conn:
        credit_store.credit_users(conn, {A: 10}, 0)
        credit_store.upsert_lots(conn, {key: 10}, moved_through)
    with engine.begin() as conn:
        credit_store.credit_users(conn, {A: 5}, 0)
        credit_store.upsert_lots(conn, {key: 5}, moved_through)
        # This transaction's own counts: heap-only (HOT) updates of each table.
        hot = conn.execute(
            text(
                "SELECT pg_stat_get_xact_tuples_hot_updated('accounts'::regclass),"
                f" pg_stat_get_xact_tuples_hot_updated('{table}'::regclass)"
            )
        ).one()
    engine.dispose()
    assert tuple(hot) == (1, 1)


@pytest.mark.postgres
def test_a_user_statement_finds_its_debits_through_the_partial_index(postgres_url: str) -> None:
    ledger = LedgerContext(migrated_engine(postgres_url), REGION, MovableClock())
    transfers.post_transfers(ledger, [earn("e1", A, 10)])
    transfers.post_transfers(ledger, [spend("s1", A, 4)])
    # Others' entries in the same seq range: a page's range alone would otherwise be read by the primary key.
    transfers.post_transfers(ledger, [earn(f"o{n}", account_number(2 + n % 50), 1) for n in range(2000)])
    # The page's first step; its seq range (the walk's bounds) is a parameter like the account.
    first_seq, end_seq = 1, 2**40 + 1
    query = statement_store.page_query("postgresql", A, 51, [0], first_seq, end_seq, statement_store.Filters([], 0, 0))
    sql = str(query.bound().compile(ledger.engine, compile_kwargs={"literal_binds": True}))
    with ledger.engine.begin() as conn:
        conn.execute(text("ANALYZE transfers"))
        # The plan for any account (generic, as a prepared statement may get): the index serves it only if the
        # query itself implies the index's predicate. Tiny tables read sequentially otherwise; without sequential
        # and plain index scans only the two account indexes can serve the OR.
        conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        generic = sql.replace(f"'{A}'", "$1").replace(f">= {first_seq}", ">= $2").replace(f"< {end_seq}", "< $3")
        conn.execute(text("PREPARE statement_of(varchar, bigint, bigint) AS " + generic))
        plan = "\n".join(
            row[0] for row in conn.execute(text(f"EXPLAIN EXECUTE statement_of('{A}', {first_seq}, {end_seq})"))
        )
        conn.execute(text("DEALLOCATE statement_of"))
        entries = statement_store.statement(conn, A, 51, None, [], 0, 0).rows
    ledger.engine.dispose()
    assert "ix_transfers_debit" in plan and "ix_transfers_credit" in plan, plan
    assert [e.transfer_id for e in entries] == ["s1", "e1"]
