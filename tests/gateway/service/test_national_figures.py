"""National figures over three real regions: the gateway's sums equal the regions' own books recounted straight from
their databases; a region that does not answer fails the figures, not the national charity counter; only operators
may ask."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from carbon.rewards.v1 import rewards_service_pb2_grpc
from service_kit.clock import china_day, system_clock
from service_kit.months import month_bounds
from service_kit.server import RunningServer
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata, refusal

ZJ, BJ, SH = "330000", "110000", "310000"


@pytest.fixture
def three(tmp_path: Path) -> Iterator[tuple[Federation, RunningServer]]:
    federation = Federation(tmp_path, [ZJ, BJ, SH], rewards=True, ledgers_in_process=True)
    gateway = start_inprocess_gateway(federation)
    yield federation, gateway
    gateway.stop()
    federation.close()


def earn(federation: Federation, code: str, account: str, points: int, behaviour: str, grams: int) -> None:
    transfer = lpb.Transfer(
        transfer_id=f"earn-{behaviour}-{account}-{points}", debit_account="system:issuance", credit_account=account,
        amount_points=points, code=lpb.TRANSFER_CODE_EARN, co2e_grams=grams, metadata={"behaviour": behaviour},
    )  # fmt: skip
    result = federation.ledger(code).PostTransfers(lpb.PostTransfersRequest(transfers=[transfer]), timeout=10)
    assert result.results[0].status == lpb.TRANSFER_STATUS_POSTED, result


def donate(federation: Federation, code: str, account: str, project: str, points: int) -> None:
    request = rpb.DonateRequest(request_id=f"d-{account}-{project}", account_number=account, project_id=project,
                                amount_points=points)  # fmt: skip
    federation.rewards(code).Donate(request, timeout=10)


def national(federation: Federation, year: int, month: int, caller: str = "ops") -> gw.GetNationalFiguresResponse:
    request = gw.GetNationalFiguresRequest(year=year, month=month)
    answer: gw.GetNationalFiguresResponse = federation.gateway().GetNationalFigures(
        request, metadata=metadata(caller), timeout=30
    )
    return answer


def recount(federation: Federation, code: str, year: int, month: int) -> dict[str, int]:
    """One region's month read straight from its three databases, by plain SQL over the rows."""
    start, end = month_bounds(year, month)
    start_us, end_us = (int(moment.timestamp() * 1_000_000) for moment in (start, end))
    sums: dict[str, int] = defaultdict(int)
    ledger = create_engine(federation.ledger_db_urls[code])
    with ledger.connect() as conn:
        rows = conn.execute(
            text("SELECT code, debit_account, credit_account, amount_points, co2e_grams, metadata_json FROM transfers"
                 " WHERE posted_at_us >= :s AND posted_at_us < :e"), {"s": start_us, "e": end_us},
        )  # fmt: skip
        names = {1: "issued", 2: "redeemed", 4: "donated", 5: "transferred_out", 6: "transferred_in"}
        for row in rows:
            sums[names[row.code]] += row.amount_points
            if row.code == 1:
                sums[f"co2e:{json.loads(row.metadata_json)['behaviour']}"] += row.co2e_grams
    ledger.dispose()
    identity = create_engine(f"sqlite:///{federation.root / f'identity-{code}.db'}")
    with identity.connect() as conn:
        sums["accounts_open"] = conn.execute(text("SELECT count(*) FROM accounts WHERE closed_at IS NULL")).scalar_one()
    identity.dispose()
    rewards = create_engine(f"sqlite:///{federation.root / f'rewards-{code}.db'}")
    with rewards.connect() as conn:
        for row in conn.execute(text("SELECT project_id, sum(units) AS units FROM donations"
                                     " WHERE state = 'COMPLETED' GROUP BY project_id")):  # fmt: skip
            sums[f"units:{row.project_id}"] = row.units
    rewards.dispose()
    return {name: value for name, value in sums.items() if value}


def points_in_lots(federation: Federation, code: str) -> int:
    """The points left in the region's lots (both lot tables, ADR 0137), read straight from its ledger database."""
    ledger = create_engine(federation.ledger_db_urls[code])
    with ledger.connect() as conn:
        points = int(
            conn.execute(
                text(
                    "SELECT (SELECT coalesce(sum(remaining_points), 0) FROM lots)"
                    " + (SELECT coalesce(sum(remaining_points), 0) FROM recent_lots)"
                )
            ).scalar_one()
        )
    ledger.dispose()
    return points


def reported(figures: gw.RegionFigures) -> dict[str, int]:
    points = figures.points
    sums = {
        "issued": points.issued_points, "redeemed": points.redeemed_points, "donated": points.donated_points,
        "transferred_out": points.transferred_out_points, "transferred_in": points.transferred_in_points,
        "accounts_open": figures.accounts_open_at_end,
        **{f"co2e:{b.behaviour}": b.co2e_grams for b in points.by_behaviour},
        **{f"units:{p.project_id}": p.units for p in figures.charity},
    }  # fmt: skip
    return {name: value for name, value in sums.items() if value}


def test_national_figures_equal_the_sums_of_three_regions_books(three: tuple[Federation, RunningServer]) -> None:
    federation, _ = three
    zj, bj = federation.open_person([ZJ, BJ])
    sh = federation.open_account(SH)
    earn(federation, ZJ, zj, 3_000, "transit_trip", 1_200)
    earn(federation, ZJ, zj, 500, "bike_km", 400)
    earn(federation, BJ, bj, 8_000, "transit_trip", 2_000)
    earn(federation, SH, sh, 2_500, "garbage_sorting", 300)
    federation.spend(BJ, bj, 800)
    donate(federation, ZJ, zj, "trees", 2_000)
    donate(federation, BJ, bj, "trees", 1_000)
    donate(federation, BJ, bj, "childrens-books", 5_000)
    assert federation.transfer("x1", zj, bj, 700).state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    today = china_day(system_clock())

    answer = national(federation, today.year, today.month)

    assert [region.region_code for region in answer.regions] == sorted([ZJ, BJ, SH])
    by_code = {region.region_code: region for region in answer.regions}
    for code in (ZJ, BJ, SH):
        assert reported(by_code[code]) == recount(federation, code, today.year, today.month), code
    total = answer.national
    assert (total.points.issued_points, total.points.redeemed_points, total.points.donated_points) == (
        14_000,
        800,
        8_000,
    )
    assert total.points.transferred_out_points == total.points.transferred_in_points == 700
    assert total.points.co2e_grams == 3_900 and total.points.by_behaviour[0].behaviour == "transit_trip"
    assert (total.accounts_opened, total.accounts_open_at_end) == (3, 3)
    assert (total.trees_planted, total.books_donated, total.forest_area_milli_mu) == (3, 1, 27)
    assert not total.points.closed, "the current month is open"
    assert sum(day.issued_points for day in total.points.by_day) == 14_000
    assert sum(day.donated_points for day in total.points.by_day) == 8_000

    ahead = federation.gateway().GetExpiringAhead(
        gw.GetExpiringAheadRequest(months_ahead=36), metadata=metadata("ops"), timeout=30
    )
    for region in ahead.regions:
        assert len(region.months) == 36
        assert sum(m.amount_points for m in region.months) == points_in_lots(federation, region.region_code)
    assert [m.amount_points for m in ahead.national] == [
        sum(region.months[i].amount_points for region in ahead.regions) for i in range(36)
    ]
    # Everything earned this month expires in the month two years on (the 25th of the 36 counted from this one).
    assert ahead.national[24].amount_points == sum(points_in_lots(federation, code) for code in (ZJ, BJ, SH))


def test_the_national_charity_counter_adds_every_region_and_names_a_silent_one(
    three: tuple[Federation, RunningServer],
) -> None:
    federation, _ = three
    zj, bj = federation.open_person([ZJ, BJ])
    sh = federation.open_account(SH)
    for code, account, points in ((ZJ, zj, 3_000), (BJ, bj, 2_000), (SH, sh, 1_000)):
        earn(federation, code, account, points, "transit_trip", 10)
        donate(federation, code, account, "trees", points)
    gateway_rewards = rewards_service_pb2_grpc.RewardsServiceStub(federation.gateway_channel())

    def trees(region: str) -> tuple[int, int, list[str]]:
        answer = gateway_rewards.ListCharityProjects(
            rpb.ListCharityProjectsRequest(), metadata=(*metadata("ops"), ("x-carbon-region", region)), timeout=10
        )
        (project,) = [p for p in answer.projects if p.project_id == "trees"]
        return project.units_region, project.units_national, list(answer.national_regions_missing)

    assert trees(ZJ) == (3, 6, [])
    federation.rewards_servers[SH].stop()
    assert trees(BJ) == (2, 5, [SH])
    status, why, details = refusal(lambda: national(federation, 2026, 1))
    assert (status, why, details["region"]) == (grpc.StatusCode.UNAVAILABLE, "REGION_UNAVAILABLE", SH)


def test_only_an_operator_may_ask_for_national_figures(three: tuple[Federation, RunningServer]) -> None:
    federation, _ = three
    code, reason, _ = refusal(lambda: national(federation, 2026, 1, caller="zj"))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED_FOR_CALLER")
    ahead = gw.GetExpiringAheadRequest(months_ahead=3)
    code, reason, _ = refusal(lambda: federation.gateway().GetExpiringAhead(ahead, metadata=metadata("zj"), timeout=10))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED_FOR_CALLER")
    today = china_day(system_clock())
    following = (today.month % 12) + 1, today.year + (today.month == 12)
    code, reason, details = refusal(lambda: national(federation, following[1], following[0]))
    assert (code, details["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "month")
