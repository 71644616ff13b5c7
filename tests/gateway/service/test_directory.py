"""The national directory: one person's accounts in every region, a region that is down reported in the list."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from service_kit.server import RunningServer
from service_kit.status import error_details
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata


def test_the_directory_lists_one_persons_accounts_and_reports_a_region_that_is_down(tmp_path: Path) -> None:
    federation = Federation(tmp_path, ["330000", "110000", "310000"], ledgers_in_process=True)
    running = start_inprocess_gateway(federation)
    try:
        zj, bj, sh = federation.open_person(["330000", "110000", "310000"])
        federation.open_account("110000")  # someone else: not listed
        federation.earn("330000", zj, 500)
        federation.earn("110000", bj, 70)
        federation.earn("310000", sh, 9)
        federation.kill_ledger("310000")
        request = gw.GetDirectoryEntryRequest(account_number=zj)
        entry = federation.gateway().GetDirectoryEntry(request, metadata=metadata("zj"), timeout=10)
    finally:
        running.stop()
        federation.close()
    listed = {(a.region_code, a.account_number): (a.available_points, a.error_reason) for a in entry.accounts}
    assert listed == {("330000", zj): (500, ""), ("110000", bj): (70, ""), ("310000", sh): (0, "REGION_UNAVAILABLE")}
    assert entry.total_available_points == 570


def test_the_directory_is_for_the_callers_own_region(federation: Federation, gateway: RunningServer) -> None:
    zj = federation.open_account("330000")
    with pytest.raises(grpc.RpcError) as caught:
        federation.gateway().GetDirectoryEntry(
            gw.GetDirectoryEntryRequest(account_number=zj), metadata=metadata("bj"), timeout=10
        )
    assert error_details(caught.value).reason == "CALLER_REGION_MISMATCH"
