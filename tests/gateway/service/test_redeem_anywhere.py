"""Redeem anywhere: a Beijing reward paid with points earned in Zhejiang, in one call, unwound when refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from service_kit.status import error_details
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata, wait_for

BUS_PASS = "beijing-bus-pass"  # 110000 only, 12,000 points
FINAL = (
    gw.REDEEM_ANYWHERE_STATE_REDEEMED,
    gw.REDEEM_ANYWHERE_STATE_UNWOUND,
    gw.REDEEM_ANYWHERE_STATE_FAILED,
    gw.REDEEM_ANYWHERE_STATE_STRANDED,
)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path, ["330000", "110000"], rewards=True, ledgers_in_process=True)
    running = start_inprocess_gateway(federation)
    yield federation
    running.stop()
    federation.close()


def person_with_points(fed: Federation) -> tuple[str, str]:
    """Two lots in Zhejiang: 8,000 points earned 400 days ago and 7,000 earned 30 days ago; nothing in Beijing."""
    zj, bj = fed.open_person(["330000", "110000"])
    now = datetime.now(UTC)
    fed.earn("330000", zj, 8_000, earned_at=now - timedelta(days=400))
    fed.earn("330000", zj, 7_000, earned_at=now - timedelta(days=30))
    return zj, bj


def lots_by_expiry(fed: Federation, code: str, account: str) -> Counter[str]:
    lots = fed.ledger(code).ListLots(lpb.ListLotsRequest(account=account, page_size=100), timeout=10).lots
    totals: Counter[str] = Counter()
    for lot in lots:
        if lot.remaining_points:
            totals[lot.expires_at.ToJsonString()] += lot.remaining_points
    return totals


def redeem_anywhere(fed: Federation, request_id: str, source: str, target: str) -> gw.RedeemAnywhereResponse:
    token = fed.authorize("redeem_anywhere", source, target, request_id, 12_000, reward_id=BUS_PASS, quantity=1)
    request = gw.RedeemAnywhereRequest(
        request_id=request_id,
        source_account=source,
        target_account=target,
        reward_id=BUS_PASS,
        quantity=1,
        resident_authorization=token,
    )
    response: gw.RedeemAnywhereResponse = fed.gateway().RedeemAnywhere(request, metadata=metadata("zj"), timeout=30)
    return response


def test_a_beijing_bus_pass_is_paid_with_zhejiang_points(fed: Federation) -> None:
    zj, bj = person_with_points(fed)
    response = redeem_anywhere(fed, "ra1", zj, bj)
    assert response.transfer.state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    assert response.transfer.amount_points == 12_000
    assert response.redemption_id and len(response.voucher_codes) == 1
    assert (response.state, response.failure_reason, response.request_id) == (
        gw.REDEEM_ANYWHERE_STATE_REDEEMED,
        "",
        "ra1",
    )
    assert redeem_anywhere(fed, "ra1", zj, bj) == response  # a replay returns the first result
    assert fed.balance("330000", zj).total_points == 3_000
    assert fed.balance("110000", bj).total_points == 0
    assert fed.clearing_sum() == 0
    assert fed.conserved("330000") and fed.conserved("110000")


def test_a_refused_redemption_returns_the_points_with_their_expiry_dates(fed: Federation) -> None:
    zj, bj = person_with_points(fed)
    before = lots_by_expiry(fed, "330000", zj)
    fed.rewards("110000").UpdateReward(
        rpb.UpdateRewardRequest(
            request_id="sold-out", reward=rpb.Reward(reward_id=BUS_PASS, stock=0), update_mask=["stock"]
        ),
        timeout=10,
    )
    refused = redeem_anywhere(fed, "ra2", zj, bj)
    assert (refused.state, refused.failure_reason) == (gw.REDEEM_ANYWHERE_STATE_UNWOUND, "OUT_OF_STOCK")
    assert (refused.redemption_id, list(refused.voucher_codes)) == ("", [])
    assert lots_by_expiry(fed, "330000", zj) == before
    assert fed.balance("330000", zj).available_points == 15_000
    assert fed.balance("110000", bj).total_points == 0
    assert fed.clearing_sum() == 0
    assert fed.conserved("330000") and fed.conserved("110000")


def test_redeem_anywhere_is_only_for_one_persons_own_accounts(fed: Federation) -> None:
    zj, _ = person_with_points(fed)
    stranger = fed.open_account("110000")
    with pytest.raises(grpc.RpcError) as caught:
        redeem_anywhere(fed, "ra3", zj, stranger)
    assert error_details(caught.value).reason == "DIFFERENT_PERSONS"
    assert fed.balance("330000", zj).available_points == 15_000


def test_a_gateway_killed_before_the_redemption_unwinds_it_after_restart(tmp_path: Path) -> None:
    fed = Federation(tmp_path, ["330000", "110000"], rewards=True, ledgers_in_process=True)
    try:
        zj, bj = person_with_points(fed)
        before = lots_by_expiry(fed, "330000", zj)
        sold_out = rpb.Reward(reward_id=BUS_PASS, stock=0)
        fed.rewards("110000").UpdateReward(
            rpb.UpdateRewardRequest(request_id="sold-out", reward=sold_out, update_mask=["stock"]), timeout=10
        )
        fed.start_gateway(crash_at="anywhere_before_redeem")
        with pytest.raises(grpc.RpcError):
            redeem_anywhere(fed, "ra4", zj, bj)
        assert fed.wait_gateway_exit() == 137
        assert fed.balance("110000", bj).total_points == 12_000  # over there, not yet redeemed
        fed.start_gateway()

        def outcome() -> gw.RedeemAnywhereResponse | None:
            try:
                response = redeem_anywhere(fed, "ra4", zj, bj)
            except grpc.RpcError as error:
                # The gateway still starting answers from the transport (no ErrorInfo); a refusal would carry one.
                assert error_details(error).reason == "", error
                return None
            return response if response.state in FINAL else None

        unwound = wait_for(outcome, what="the recovery loop to unwind the request")
        assert (unwound.state, unwound.failure_reason) == (gw.REDEEM_ANYWHERE_STATE_UNWOUND, "OUT_OF_STOCK")
        assert fed.balance("330000", zj).available_points == 15_000
        assert lots_by_expiry(fed, "330000", zj) == before
        assert fed.clearing_sum() == 0
        assert fed.conserved("330000") and fed.conserved("110000")
    finally:
        fed.close()
