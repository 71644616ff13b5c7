"""The dashboard's figures read from every region the staff member may see: the ledger's books and ingest's
statistics, through their existing gRPC methods (ops_api.domain.dashboard adds them up)."""

from __future__ import annotations

from datetime import date
from typing import Any

from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ops_api.context import OpsContext
from ops_api.domain.dashboard import RegionFigures, summarise
from ops_api.domain.staff import Role, Staff
from ops_api.wire import proto_date, to_json


def dashboard(context: OpsContext, staff: Staff, from_day: date, to_day: date) -> dict[str, Any]:
    """Community staff see their own region only; everyone else every region."""
    registry = context.regions.registry
    codes = [staff.region_code] if staff.role is Role.COMMUNITY_STAFF else registry.sorted_codes()
    regions = []
    for code in codes:
        region = context.regions.region(code)
        ledger = context.regions.ledger(region)
        books = to_json(context.regions.call("ledger", ledger.CheckConservation, lpb.CheckConservationRequest()))
        ingest = context.regions.ingest(region)
        request = inpb.GetStatisticsRequest(region_code=code, from_day=proto_date(from_day), to_day=proto_date(to_day))
        rows = [to_json(row) for row in context.regions.call("ingest", ingest.GetStatistics, request).rows]
        regions.append(RegionFigures(code, region.name_zh, region.name_en, books, rows))
    return {"from_day": from_day.isoformat(), "to_day": to_day.isoformat(), **summarise(regions)}
