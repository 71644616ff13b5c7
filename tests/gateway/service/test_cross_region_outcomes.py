"""One failure style for the two long-running cross-region operations (ADR 0613): what is refused before anything is
recorded is an error; once recorded, CreateCrossRegionTransfer and RedeemAnywhere both answer OK with the operation as
it stands, final (with a reason when refused) or in progress (repeat the same request to drive it on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata, refusal, wait_for

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


def test_a_refusal_after_the_checks_is_a_final_state_with_its_reason_for_both_operations(fed: Federation) -> None:
    zj, bj = fed.open_person(["330000", "110000"])
    fed.earn("330000", zj, 500)  # too few for either
    transfer = fed.transfer("poor-1", zj, bj, 1_000)
    assert (transfer.state, transfer.failure_reason) == (gw.CROSS_REGION_TRANSFER_STATE_RELEASED, "INSUFFICIENT_POINTS")
    redeemed = redeem_anywhere(fed, "poor-2", zj, bj)
    assert (redeemed.state, redeemed.failure_reason) == (gw.REDEEM_ANYWHERE_STATE_FAILED, "INSUFFICIENT_POINTS")
    assert redeemed.transfer.state == gw.CROSS_REGION_TRANSFER_STATE_RELEASED
    assert list(redeemed.voucher_codes) == []
    # A repeat answers the same final state; nothing moved.
    assert redeem_anywhere(fed, "poor-2", zj, bj) == redeemed
    assert fed.transfer("poor-1", zj, bj, 1_000) == transfer
    assert fed.balance("330000", zj).available_points == 500


def test_a_refusal_known_before_anything_is_recorded_is_an_error_for_both_operations(fed: Federation) -> None:
    zj, _ = fed.open_person(["330000", "110000"])
    stranger = fed.open_account("110000")
    fed.earn("330000", zj, 20_000)
    code, reason, _ = refusal(lambda: fed.transfer("other-1", zj, stranger, 100))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DIFFERENT_PERSONS")
    code, reason, _ = refusal(lambda: redeem_anywhere(fed, "other-2", zj, stranger))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DIFFERENT_PERSONS")
    code, reason, _ = refusal(lambda: fed.get_transfer("other-1"))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "TRANSFER_NOT_FOUND")  # nothing was recorded


def test_a_region_not_answering_leaves_both_in_progress_and_a_repeat_drives_them_to_the_end(fed: Federation) -> None:
    zj, bj = fed.open_person(["330000", "110000"])
    fed.earn("330000", zj, 20_000)
    fed.kill_ledger("110000")
    transfer = fed.transfer("slow-1", zj, bj, 1_000)
    assert transfer.state == gw.CROSS_REGION_TRANSFER_STATE_HELD and transfer.failure_reason == ""
    pending = redeem_anywhere(fed, "slow-2", zj, bj)
    assert (pending.state, pending.failure_reason) == (gw.REDEEM_ANYWHERE_STATE_CREATED, "")
    assert pending.transfer.state == gw.CROSS_REGION_TRANSFER_STATE_HELD and list(pending.voucher_codes) == []
    fed.start_ledger("110000")
    # As a client does: the same request again (each repeat drives the operation on) until the state is final.
    committed = wait_for(
        lambda: fed.transfer("slow-1", zj, bj, 1_000).state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED,
        timeout_s=40,
        what="the transfer to commit",
    )
    assert committed

    def final() -> gw.RedeemAnywhereResponse | None:
        answer = redeem_anywhere(fed, "slow-2", zj, bj)
        return answer if answer.state in FINAL else None

    done = wait_for(final, timeout_s=40, what="the redemption to finish")
    assert done.state == gw.REDEEM_ANYWHERE_STATE_REDEEMED and len(done.voucher_codes) == 1
    assert fed.balance("330000", zj).total_points == 20_000 - 1_000 - 12_000
