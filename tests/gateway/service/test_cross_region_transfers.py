"""Cross-region transfers through a real gateway over real region processes: the paths a caller sees."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from service_kit.accounts import new_account_number
from service_kit.server import RunningServer
from service_kit.status import error_details
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata

COMMITTED = gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
RELEASED = gw.CROSS_REGION_TRANSFER_STATE_RELEASED


def funded(fed: Federation, points: int) -> tuple[str, str]:
    source, target = fed.open_person(["330000", "110000"])
    fed.earn("330000", source, points)
    return source, target


def test_a_transfer_moves_points_and_keeps_their_expiry(federation: Federation, gateway: RunningServer) -> None:
    source, target = funded(federation, 1_000)
    transfer = federation.transfer("t1", source, target, 400)
    assert transfer.state == COMMITTED
    assert federation.balance("330000", source).available_points == 600
    assert federation.balance("110000", target).available_points == 400
    assert federation.clearing_sum() == 0
    assert federation.conserved("330000") and federation.conserved("110000")


def test_a_replayed_transfer_returns_the_stored_one(federation: Federation, gateway: RunningServer) -> None:
    source, target = funded(federation, 1_000)
    first = federation.transfer("t2", source, target, 300)
    again = federation.transfer("t2", source, target, 300)
    assert again == first
    assert federation.balance("110000", target).available_points == 300


def test_a_reused_transfer_id_with_another_body_is_refused(federation: Federation, gateway: RunningServer) -> None:
    source, target = funded(federation, 1_000)
    federation.transfer("t3", source, target, 300)
    with pytest.raises(grpc.RpcError) as caught:
        federation.transfer("t3", source, target, 301)
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


def test_insufficient_points_release_with_the_reason(federation: Federation, gateway: RunningServer) -> None:
    source, target = funded(federation, 100)
    transfer = federation.transfer("t4", source, target, 500)
    assert (transfer.state, transfer.failure_reason) == (RELEASED, "INSUFFICIENT_POINTS")
    assert federation.balance("330000", source).available_points == 100
    assert federation.balance("110000", target).total_points == 0


def test_a_platform_may_not_move_another_regions_points(federation: Federation, gateway: RunningServer) -> None:
    source, target = funded(federation, 1_000)
    with pytest.raises(grpc.RpcError) as caught:
        federation.transfer("t5", source, target, 100, caller="bj")
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_REGION_MISMATCH")
    assert federation.balance("330000", source).available_points == 1_000


@pytest.mark.parametrize(
    ("field", "points", "transfer_id"), [("amount_points", 0, "t6"), ("transfer_id", 5, "bad id!")]
)
def test_bad_input_names_the_field(
    federation: Federation, gateway: RunningServer, field: str, points: int, transfer_id: str
) -> None:
    source, target = funded(federation, 100)
    with pytest.raises(grpc.RpcError) as caught:
        federation.transfer(transfer_id, source, target, points)
    details = error_details(caught.value)
    assert (details.code, details.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, field)


def test_an_unknown_destination_account_changes_nothing(federation: Federation, gateway: RunningServer) -> None:
    source, _ = funded(federation, 100)
    with pytest.raises(grpc.RpcError) as caught:
        federation.transfer("t7", source, new_account_number("110000"), 50)
    assert error_details(caught.value).reason == "UNKNOWN_ACCOUNT"
    assert federation.balance("330000", source).available_points == 100


def test_a_region_down_is_unavailable_for_its_accounts_only(federation: Federation, gateway: RunningServer) -> None:
    source, target = funded(federation, 1_000)
    other = federation.open_account("330000")
    federation.stop_identity("110000")
    federation.kill_ledger("110000")
    with pytest.raises(grpc.RpcError) as caught:
        federation.transfer("t8", source, target, 100)
    details = error_details(caught.value)
    assert (details.code, details.reason, details.metadata["region"]) == (
        grpc.StatusCode.UNAVAILABLE, "REGION_UNAVAILABLE", "110000",
    )  # fmt: skip
    listed = federation.gateway().ListCrossRegionTransfers(
        gw.ListCrossRegionTransfersRequest(account_number=other), metadata=metadata("zj")
    )
    assert list(listed.transfers) == []
    assert federation.balance("330000", source).available_points == 1_000


def test_points_move_only_between_one_persons_accounts(federation: Federation, gateway: RunningServer) -> None:
    source = federation.open_account("330000")
    stranger = federation.open_account("110000")
    federation.earn("330000", source, 1_000)
    with pytest.raises(grpc.RpcError) as caught:
        federation.transfer("t9", source, stranger, 100)
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DIFFERENT_PERSONS")
    assert federation.balance("330000", source).available_points == 1_000


def test_both_regions_policies_may_allow_transfers_between_persons(tmp_path: Path) -> None:
    federation = Federation(tmp_path, ["330000", "110000"], between_persons=True, ledgers_in_process=True)
    running = start_inprocess_gateway(federation)
    try:
        source, stranger = federation.open_account("330000"), federation.open_account("110000")
        federation.earn("330000", source, 1_000)
        assert federation.transfer("t10", source, stranger, 100).state == COMMITTED
    finally:
        running.stop()
        federation.close()
