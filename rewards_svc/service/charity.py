"""Charity use cases: donate points to a project (a ledger transfer to system:donation) and count its impact."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from rewards_svc import store
from rewards_svc.clients import Ledger, LedgerRefused, LedgerUnavailable, TransferOutcome
from rewards_svc.domain.charity import (
    CharityProject,
    Donation,
    DonationState,
    donation_transfer_id,
    donation_units,
)
from rewards_svc.domain.requests import require_account, require_request_id
from rewards_svc.service.idempotency import idempotency_reused
from service_kit.clock import Clock
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from service_kit.months import check_month, month_bounds

log = logging.getLogger("carbon.rewards.charity")

# The ledger's answer to a transfer id used before with another body.
KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def donation_pending() -> Unavailable:
    return Unavailable("DONATION_PENDING", "the ledger did not answer; retry with the same request_id")


class Charity:
    def __init__(self, engine: Engine, ledger: Ledger, region_code: str, clock: Clock) -> None:
        self._engine = engine
        self._ledger = ledger
        self._region_code = region_code
        self._clock = clock

    def list_projects(self) -> list[CharityProject]:
        with self._engine.connect() as connection:
            return store.charity.list_projects(connection, self._region_code)

    def month_figures(self, year: int, month: int) -> list[tuple[CharityProject, int, int]]:
        """GetCharityFigures: every project with the units and points of the month's completed donations."""
        check_month(year, month, self._clock())
        start, end = month_bounds(year, month)
        with self._engine.connect() as connection:
            projects = store.charity.list_projects(connection, self._region_code)
            month_sums = store.charity.month_donations(connection, self._region_code, start, end)
        return [(project, *month_sums.get(project.project_id, (0, 0))) for project in projects]

    def _project(self, project_id: str) -> CharityProject:
        with self._engine.connect() as connection:
            found = store.charity.list_projects(connection, self._region_code, project_id)
        if not found:
            raise NotFound("PROJECT_NOT_FOUND", f"no charity project {project_id}", {"project_id": project_id})
        return found[0]

    def donate(self, request_id: str, account_number: str, project_id: str, amount_points: int) -> Donation:
        """Points to a charity project (ledger transfer to system:donation); impact counted once it posts."""
        require_request_id(request_id)
        require_account(account_number)
        if not project_id:
            raise InvalidArgument("project_id", "required")
        units = donation_units(self._project(project_id), amount_points)
        with self._engine.connect() as connection:
            row = store.charity.get_donation(connection, request_id=request_id)
        if row is None:
            donation_id = uuid.uuid4().hex
            try:
                with self._engine.begin() as connection:
                    store.charity.insert_donation(
                        connection,
                        donation_id=donation_id,
                        request_id=request_id,
                        account_number=account_number,
                        project_id=project_id,
                        region_code=self._region_code,
                        amount_points=amount_points,
                        units=units,
                        state=DonationState.PENDING,
                        failure_reason="",
                        created_at=self._clock(),
                    )
            except IntegrityError:
                return self.donate(request_id, account_number, project_id, amount_points)
        else:
            if (row.account_number, row.project_id, row.amount_points) != (account_number, project_id, amount_points):
                raise idempotency_reused(request_id)
            donation_id = row.donation_id
        self.finish_donation(donation_id)
        return Donation(donation_id=donation_id, project=self._project(project_id), units=units)

    def _settle_taken_key(self, transfer_id: str, account_number: str, amount_points: int) -> TransferOutcome:
        """The donation's transfer id is taken (never a refusal: the donation may be posted). Posted when the ledger
        holds this donation under it; otherwise the donation stays PENDING for an operator and the caller is told."""
        try:
            posted = self._ledger.find_transfer(transfer_id)
        except (LedgerUnavailable, LedgerRefused):
            raise donation_pending() from None
        if posted is not None and (posted.kind, posted.debit_account, posted.amount_points) == (
            "DONATE",
            account_number,
            amount_points,
        ):
            return TransferOutcome(posted=True)
        log.error("donation transfer id taken by another transfer", extra={"transfer_id": transfer_id})
        raise FailedPrecondition("DONATION_ID_CONFLICT", "the ledger holds another transfer under this donation's id")

    def finish_donation(self, donation_id: str) -> None:
        """Posts a PENDING donation (idempotent by its transfer id) and counts its impact; raises why it failed."""
        with self._engine.connect() as connection:
            row = store.charity.get_donation(connection, donation_id=donation_id)
        if row.state == DonationState.PENDING:
            transfer_id = donation_transfer_id(donation_id)
            try:
                outcome = self._ledger.donate(transfer_id, row.account_number, row.amount_points, donation_id)
            except LedgerUnavailable:
                raise donation_pending() from None
            except LedgerRefused as refused:
                if refused.key_taken:
                    outcome = self._settle_taken_key(transfer_id, row.account_number, row.amount_points)
                else:
                    with self._engine.begin() as connection:
                        store.charity.set_donation_state(connection, donation_id, DonationState.FAILED, refused.reason)
                    raise refused.as_domain_error() from None
            if outcome.failure_reason == KEY_REUSED:
                outcome = self._settle_taken_key(transfer_id, row.account_number, row.amount_points)
            with self._engine.begin() as connection:
                if not outcome.posted:
                    store.charity.set_donation_state(
                        connection, donation_id, DonationState.FAILED, outcome.failure_reason
                    )
                elif store.charity.set_donation_state(connection, donation_id, DonationState.COMPLETED):
                    store.charity.add_impact(connection, row.project_id, row.region_code, row.units, row.amount_points)
            with self._engine.connect() as connection:
                row = store.charity.get_donation(connection, donation_id=donation_id)
        if row.state == DonationState.FAILED:
            raise FailedPrecondition(row.failure_reason, f"donation failed: {row.failure_reason}")
