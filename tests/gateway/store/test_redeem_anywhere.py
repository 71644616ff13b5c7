"""Redeem-anywhere requests in their table: recorded once, advanced by compare-and-set, not due once finished."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway.domain.redeem_anywhere import (
    REDEEM_ANYWHERE_FINISHED,
    RedeemAnywhere,
    RedeemAnywhereRequest,
    RedeemAnywhereState,
)
from gateway.store import leases, tables
from gateway.store import redeem_anywhere as store
from service_kit.accounts import new_account_number
from tests.gateway.store.conftest import NOW


def test_a_redeem_anywhere_request_is_recorded_once_and_advanced_by_compare_and_set(engine: Engine) -> None:
    request = RedeemAnywhereRequest(
        "ra1", new_account_number("330000"), new_account_number("110000"), "beijing-bus-pass", 1
    )
    item = RedeemAnywhere(request, "zj", 12_000, RedeemAnywhereState.CREATED, NOW)
    with engine.begin() as conn:
        store.insert_redeem_anywhere(conn, item, lease_until=NOW)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        store.insert_redeem_anywhere(conn, item, lease_until=NOW)
    with engine.begin() as conn:
        assert store.advance_redeem_anywhere(conn, "ra1", RedeemAnywhereState.CREATED, RedeemAnywhereState.TRANSFERRED)
        assert store.advance_redeem_anywhere(
            conn, "ra1", RedeemAnywhereState.TRANSFERRED, RedeemAnywhereState.REDEEMED,
            redemption_id="r1", voucher_codes=["V1"], finished_at=NOW,
        )  # fmt: skip
        assert not store.advance_redeem_anywhere(
            conn, "ra1", RedeemAnywhereState.TRANSFERRED, RedeemAnywhereState.UNWINDING
        )
        finished = [state.value for state in REDEEM_ANYWHERE_FINISHED]
        assert leases.due_unfinished(conn, tables.redeem_anywhere, finished, NOW + timedelta(hours=1), 10) == []
        stored = store.get_redeem_anywhere(conn, "ra1")
    assert stored is not None
    assert (stored.state, stored.redemption_id, stored.voucher_codes, stored.amount_points) == (
        RedeemAnywhereState.REDEEMED, "r1", ["V1"], 12_000,
    )  # fmt: skip
