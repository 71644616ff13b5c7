"""Fixtures for ledger tests: a migrated database (SQLite and PostgreSQL) and a movable clock."""

from __future__ import annotations

from collections.abc import Iterator

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
