"""The gateway's tables on SQLite and PostgreSQL: idempotent inserts, compare-and-set steps, leases, due scans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway import store
from gateway.domain import (
    Anywhere,
    AnywhereRequest,
    AnywhereState,
    Decision,
    HeldLot,
    State,
    Transfer,
    TransferRequest,
)
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


def test_a_transfer_id_is_stored_once(engine: Engine) -> None:
    with engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW)


def test_a_step_moves_only_from_the_expected_state_and_keeps_the_lots(engine: Engine) -> None:
    lots = [HeldLot("lot-1", "2025-01-02", NOW + timedelta(days=300), 400)]
    with engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW)
        assert store.advance(conn, "t1", State.CREATED, State.HELD, hold_expires_at=NOW, held_lots=lots)
        assert not store.advance(conn, "t1", State.CREATED, State.HELD)
        assert store.decide(conn, "t1", State.HELD, Decision.NONE, Decision.COMMIT)
        assert not store.decide(conn, "t1", State.HELD, Decision.NONE, Decision.ABORT)
    with engine.connect() as conn:
        stored = store.get_transfer(conn, "t1")
    assert stored is not None
    assert (stored.state, stored.decision, stored.held_lots, stored.hold_expires_at) == (
        State.HELD, Decision.COMMIT, lots, NOW,
    )  # fmt: skip


def test_a_lease_excludes_a_second_driver_until_it_runs_out(engine: Engine) -> None:
    with engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW + timedelta(seconds=5))
        assert not store.claim(conn, "t1", NOW, NOW + timedelta(seconds=5))
        assert store.due_unfinished(conn, NOW, 10) == []
        assert store.claim(conn, "t1", NOW + timedelta(seconds=6), NOW + timedelta(seconds=11))
        store.postpone(conn, "t1", NOW + timedelta(seconds=20))
        assert store.due_unfinished(conn, NOW + timedelta(seconds=19), 10) == []
        assert store.due_unfinished(conn, NOW + timedelta(seconds=20), 10) == ["t1"]


def test_a_redeem_anywhere_request_is_recorded_once_and_advanced_by_compare_and_set(engine: Engine) -> None:
    request = AnywhereRequest("ra1", new_account_number("330000"), new_account_number("110000"), "beijing-bus-pass", 1)
    item = Anywhere(request, "zj", 12_000, AnywhereState.CREATED, NOW)
    with engine.begin() as conn:
        store.insert_anywhere(conn, item, lease_until=NOW)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        store.insert_anywhere(conn, item, lease_until=NOW)
    with engine.begin() as conn:
        assert store.advance_anywhere(conn, "ra1", AnywhereState.CREATED, AnywhereState.TRANSFERRED)
        assert store.advance_anywhere(
            conn, "ra1", AnywhereState.TRANSFERRED, AnywhereState.REDEEMED,
            redemption_id="r1", voucher_codes=["V1"], finished_at=NOW,
        )  # fmt: skip
        assert not store.advance_anywhere(conn, "ra1", AnywhereState.TRANSFERRED, AnywhereState.UNWINDING)
        assert store.due_unfinished(conn, NOW + timedelta(hours=1), 10, store.anywhere) == []
        stored = store.get_anywhere(conn, "ra1")
    assert stored is not None
    assert (stored.state, stored.redemption_id, stored.voucher_codes, stored.amount_points) == (
        AnywhereState.REDEEMED, "r1", ["V1"], 12_000,
    )  # fmt: skip
