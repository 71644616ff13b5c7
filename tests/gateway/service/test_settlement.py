"""The settlement report: gross flows rebuilt from the regions' clearing entries, netted, and checked for balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.gateway.v1 import gateway_service_pb2 as gw
from service_kit.server import RunningServer
from service_kit.status import error_details
from tests.gateway.federation import Federation, metadata


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
