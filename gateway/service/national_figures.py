"""National figures: a month's figures asked of every region's identity, ledger and rewards at once, then summed
(gateway.domain.national_figures); and the national charity counter added to a forwarded ListCharityProjects.

Every region must answer GetNationalFigures (a sum with a region missing would be a wrong figure, not a smaller one);
the charity counter instead names the regions that did not answer, so one region's outage does not take the
projects list of every other region down with it (ADR 0608).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway.clients import RegionClients, RemoteError, call
from gateway.domain.national_figures import national_expiring, national_figures, region_figures, units_national
from service_kit.errors import InvalidArgument
from service_kit.months import check_month

CHARITY_PROJECTS_PATH = "/carbon.rewards.v1.RewardsService/ListCharityProjects"
MAX_MONTHS_AHEAD = 36  # as the ledger's GetExpiringAhead
# Regions asked at once: three calls each, each mostly waiting on the region.
CONCURRENT_REGIONS = 8


class NationalFigures:
    def __init__(self, clients: RegionClients) -> None:
        self._clients = clients
        self._pool = ThreadPoolExecutor(max_workers=CONCURRENT_REGIONS, thread_name_prefix="national-figures")

    def month(self, year: int, month: int, now: datetime, timeout_s: float) -> gw.GetNationalFiguresResponse:
        check_month(year, month, now)
        codes = self._clients.registry.sorted_codes()
        asked = {code: self._pool.submit(self._region, code, year, month, timeout_s) for code in codes}
        regions = []
        for code in codes:
            try:
                regions.append(asked[code].result())
            except RemoteError as error:
                raise error.as_unavailable() from None
        return gw.GetNationalFiguresResponse(
            year=year, month=month, regions=regions, national=national_figures(year, month, regions)
        )

    def expiring_ahead(self, months_ahead: int, timeout_s: float) -> gw.GetExpiringAheadResponse:
        if not 0 <= months_ahead <= MAX_MONTHS_AHEAD:
            raise InvalidArgument("months_ahead", f"must be 0 (12) to {MAX_MONTHS_AHEAD}")
        request = ledger.GetExpiringAheadRequest(months_ahead=months_ahead)
        codes = self._clients.registry.sorted_codes()
        asked = {
            code: self._pool.submit(call, code, self._clients.ledger(code).GetExpiringAhead, request, timeout_s)
            for code in codes
        }
        regions = []
        for code in codes:
            try:
                regions.append(gw.RegionExpiring(region_code=code, months=asked[code].result().months))
            except RemoteError as error:
                raise error.as_unavailable() from None
        return gw.GetExpiringAheadResponse(regions=regions, national=national_expiring(regions))

    def _region(self, code: str, year: int, month: int, timeout_s: float) -> gw.RegionFigures:
        clients = self._clients
        accounts = call(
            code, clients.identity(code).GetAccountFigures, identity.GetAccountFiguresRequest(year=year, month=month),
            timeout_s,
        )  # fmt: skip
        points = call(
            code, clients.ledger(code).GetPeriodFigures, ledger.GetPeriodFiguresRequest(year=year, month=month),
            timeout_s,
        )  # fmt: skip
        charity = call(
            code, clients.rewards(code).GetCharityFigures, rewards.GetCharityFiguresRequest(year=year, month=month),
            timeout_s,
        )  # fmt: skip
        return region_figures(code, accounts, points.figures, charity.projects)

    def with_units_national(self, region_code: str, answer: bytes, timeout_s: float) -> bytes:
        """A region's ListCharityProjects answer with units_national filled from every region's units_region (the
        answering region's own from its answer); the regions that did not answer are named, their units left out."""
        response = rewards.ListCharityProjectsResponse.FromString(answer)
        others: dict[str, Future[rewards.ListCharityProjectsResponse]] = {
            code: self._pool.submit(
                call,
                code,
                self._clients.rewards(code).ListCharityProjects,
                rewards.ListCharityProjectsRequest(),
                timeout_s,
            )
            for code in self._clients.registry.sorted_codes()
            if code != region_code
        }
        answers = [response]
        for code, future in others.items():
            try:
                answers.append(future.result())
            except RemoteError:
                response.national_regions_missing.append(code)
        totals = units_national(answers)
        for project in response.projects:
            project.units_national = totals.get(project.project_id, 0)
        return response.SerializeToString()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
