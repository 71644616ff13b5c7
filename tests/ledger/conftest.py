"""Fixtures for ledger tests: a migrated database (SQLite and PostgreSQL) and a movable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from ledger_svc.service.context import LedgerContext
from tests.ledger.ledger_support import REGION, MovableClock, migrated_engine


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = migrated_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = migrated_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(engine: Engine, clock: MovableClock) -> LedgerContext:
    return LedgerContext(engine, REGION, clock)


@pytest.fixture
def pg_ledger(postgres_url: str, clock: MovableClock) -> Iterator[LedgerContext]:
    """A ledger on PostgreSQL only (the set-based paths' own statements)."""
    engine = migrated_engine(postgres_url)
    yield LedgerContext(engine, REGION, clock)
    engine.dispose()


@pytest.fixture
def two_ledgers(
    postgres_url: str, fresh_postgres_url: Callable[[], str]
) -> Iterator[tuple[LedgerContext, LedgerContext]]:
    """One clock over two PostgreSQL databases: a ledger with the set-based paths (ADR 0102), one without."""
    clock = MovableClock()
    fast_engine = migrated_engine(postgres_url)
    general_engine = migrated_engine(fresh_postgres_url())
    yield (
        LedgerContext(fast_engine, REGION, clock),
        LedgerContext(
            general_engine, REGION, clock, credit_fast_path=False, set_based_expiry=False, set_based_holds=False
        ),
    )
    fast_engine.dispose()
    general_engine.dispose()
