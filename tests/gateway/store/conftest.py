"""The gateway's tables on SQLite and PostgreSQL (`database_url` runs each test on both), and a transfer to store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from gateway.domain.transfers import Decision, State, Transfer, TransferRequest
from service_kit.accounts import new_account_number
from service_kit.db import make_engine, migrate

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Engine:
    built = make_engine(database_url)
    migrate("gateway", built)
    return built


def transfer(transfer_id: str = "t1") -> Transfer:
    request = TransferRequest(transfer_id, new_account_number("330000"), new_account_number("110000"), 400)
    return Transfer(request, "zj", State.CREATED, Decision.NONE, NOW, NOW + timedelta(minutes=1), 60_000)
