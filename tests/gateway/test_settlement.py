"""Settlement is rebuilt from the clearing entries and netted multilaterally; the directory reports per region."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.gateway.v1 import gateway_service_pb2 as gw
from gateway.domain import Position, net_positions
from service_kit.server import RunningServer
from service_kit.status import error_details
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata


def test_netting_settles_a_cycle_with_fewer_payments() -> None:
    gross = {("330000", "110000"): 500, ("110000", "310000"): 300, ("310000", "330000"): 100}
    net = net_positions(gross)
    assert net == [Position("330000", "310000", 200), Position("330000", "110000", 200)]
    assert [position.amount_cents for position in net] == [200, 200]  # 100 points = 1 CNY


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def report(federation: Federation, start: datetime, end: datetime) -> gw.GetSettlementReportResponse:
    request = gw.GetSettlementReportRequest(period_start=stamp(start), period_end=stamp(end))
    response: gw.GetSettlementReportResponse = federation.gateway().GetSettlementReport(
        request, metadata=metadata("ops"), timeout=10
    )
    return response


def test_settlement_reports_gross_and_net_flows_from_the_ledgers(
    federation: Federation, gateway: RunningServer
) -> None:
    zj, bj = federation.open_person(["330000", "110000"])
    federation.earn("330000", zj, 1_000)
    federation.earn("110000", bj, 1_000)
    start = datetime.now(UTC) - timedelta(minutes=1)
    assert federation.transfer("s1", zj, bj, 700).state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    assert federation.transfer("s2", bj, zj, 200, caller="bj").state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    result = report(federation, start, datetime.now(UTC) + timedelta(minutes=1))
    gross = {(p.debtor_region, p.creditor_region): (p.points, p.amount_cents) for p in result.gross}
    assert gross == {("330000", "110000"): (700, 700), ("110000", "330000"): (200, 200)}
    assert [(p.debtor_region, p.creditor_region, p.points) for p in result.net] == [("330000", "110000", 500)]
    assert result.clearing_balanced


def test_a_settlement_period_must_end_after_it_starts(federation: Federation, gateway: RunningServer) -> None:
    now = datetime.now(UTC)
    with pytest.raises(grpc.RpcError) as caught:
        report(federation, now, now - timedelta(days=1))
    details = error_details(caught.value)
    assert (details.code, details.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "period_end")


def test_the_directory_lists_one_persons_accounts_and_reports_a_region_that_is_down(tmp_path: Path) -> None:
    federation = Federation(tmp_path, ["330000", "110000", "310000"])
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
