"""gRPC servicer for carbon.ledger.v1.LedgerService: each call translates (wire.py) and runs a use case (service/)."""

from __future__ import annotations

import os

import grpc
from sqlalchemy import Engine

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from ledger_svc import callers, wire
from ledger_svc.domain.holds import CommitItem, HoldOutcome
from ledger_svc.domain.transfers import ItemResult, Status
from ledger_svc.reminder_client import IdentityReminders
from ledger_svc.service import (
    audit,
    expiring_ahead,
    expiry,
    hold_batches,
    holds,
    periods,
    reads,
    refunds,
    scheduler,
    transfers,
)
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.metrics import LedgerMetrics
from ledger_svc.settings import LedgerSettings
from service_kit.access import current_caller
from service_kit.clock import Clock, system_clock
from service_kit.failures import idempotent
from service_kit.server import Registration
from service_kit.settings import Settings, SettingsError

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerServiceServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    """Every method is idempotent as the proto documents it (reads, or writes keyed by their ids), so the kit runs
    any of them again after a deadlock or a lost connection (service_kit/failures.py)."""

    def __init__(self, ctx: LedgerContext) -> None:
        self._ctx = ctx
        self._metrics = LedgerMetrics(ctx.region_code)

    @idempotent
    def PostTransfers(
        self, request: pb.PostTransfersRequest, context: grpc.ServicerContext
    ) -> pb.PostTransfersResponse:
        callers.check_transfers(current_caller(), self._ctx.region_code, request.transfers)
        items = [wire.transfer_request(index, message) for index, message in enumerate(request.transfers)]
        results = transfers.post_transfers(self._ctx, items)
        self._metrics.posted(results)
        return wire.post_transfers_response(results)

    @idempotent
    def PostCredits(self, request: pb.PostCreditsRequest, context: grpc.ServicerContext) -> pb.PostCreditsResponse:
        items = wire.credit_requests(request)
        columns = transfers.post_credit_columns(self._ctx, items)
        self._metrics.credited(items, columns.statuses)
        return wire.post_credits_response(columns)

    @idempotent
    def GetTransfer(self, request: pb.GetTransferRequest, context: grpc.ServicerContext) -> pb.GetTransferResponse:
        posting = transfers.get_transfer(self._ctx, request.transfer_id)
        result = ItemResult(posting.transfer_id, Status.POSTED, posting=posting)
        return pb.GetTransferResponse(transfer=wire.transfer_message(posting), result=wire.result_message(result))

    @idempotent
    def RefundTransfer(
        self, request: pb.RefundTransferRequest, context: grpc.ServicerContext
    ) -> pb.RefundTransferResponse:
        result = refunds.refund_transfer(
            self._ctx, request.refund_id, request.original_transfer_id, request.amount_points, request.reason
        )
        return pb.RefundTransferResponse(result=wire.result_message(result))

    @idempotent
    def Hold(self, request: pb.HoldRequest, context: grpc.ServicerContext) -> pb.HoldResponse:
        hold_request = wire.hold_request(request)
        if hold_request.commit_to_account:
            committed, result = holds.hold_and_commit(self._ctx, hold_request)
            self._metrics.posted([result])
            return pb.HoldResponse(
                hold=wire.hold_message(committed, self._ctx.now_us()), result=wire.result_message(result)
            )
        created = holds.hold(self._ctx, hold_request)
        return pb.HoldResponse(hold=wire.hold_message(created, self._ctx.now_us()))

    @idempotent
    def CommitHold(self, request: pb.CommitHoldRequest, context: grpc.ServicerContext) -> pb.CommitHoldResponse:
        hold, result = holds.commit_hold(self._ctx, request.hold_id, request.amount_points, request.credit_account)
        self._metrics.posted([result])
        return pb.CommitHoldResponse(
            hold=wire.hold_message(hold, self._ctx.now_us()), result=wire.result_message(result)
        )

    @idempotent
    def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: grpc.ServicerContext) -> pb.ReleaseHoldResponse:
        hold = holds.release_hold(self._ctx, request.hold_id)
        return pb.ReleaseHoldResponse(hold=wire.hold_message(hold, self._ctx.now_us()))

    @idempotent
    def HoldBatch(self, request: pb.HoldBatchRequest, context: grpc.ServicerContext) -> pb.HoldBatchResponse:
        outcomes = hold_batches.hold_batch(self._ctx, [wire.hold_item(item) for item in request.holds])
        return self._items_answered(pb.HoldBatchResponse(), outcomes)

    @idempotent
    def CommitHolds(self, request: pb.CommitHoldsRequest, context: grpc.ServicerContext) -> pb.CommitHoldsResponse:
        items = [CommitItem(c.hold_id, c.amount_points, c.credit_account) for c in request.commits]
        return self._items_answered(pb.CommitHoldsResponse(), hold_batches.commit_holds(self._ctx, items))

    @idempotent
    def ReleaseHolds(self, request: pb.ReleaseHoldsRequest, context: grpc.ServicerContext) -> pb.ReleaseHoldsResponse:
        outcomes = hold_batches.release_holds(self._ctx, [item.hold_id for item in request.releases])
        return self._items_answered(pb.ReleaseHoldsResponse(), outcomes)

    def _items_answered(self, response: wire.HoldItemsResponse, outcomes: list[HoldOutcome]) -> wire.HoldItemsResponse:
        self._metrics.posted([outcome.result for outcome in outcomes if outcome.result is not None])
        return wire.hold_items_response(response, outcomes, self._ctx.now_us())

    @idempotent
    def GetHold(self, request: pb.GetHoldRequest, context: grpc.ServicerContext) -> pb.GetHoldResponse:
        hold = holds.get_hold(self._ctx, request.hold_id)
        return pb.GetHoldResponse(hold=wire.hold_message(hold, self._ctx.now_us()))

    @idempotent
    def SweepExpiredHolds(
        self, request: pb.SweepExpiredHoldsRequest, context: grpc.ServicerContext
    ) -> pb.SweepExpiredHoldsResponse:
        return pb.SweepExpiredHoldsResponse(holds_released=holds.sweep_expired_holds(self._ctx, request.batch_size))

    @idempotent
    def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        view = reads.get_balance(self._ctx, request.account)
        return pb.GetBalanceResponse(balance=wire.balance_message(request.account, view))

    @idempotent
    def ListStatementEntries(
        self, request: pb.ListStatementEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListStatementEntriesResponse:
        page = reads.list_statement_entries(
            self._ctx,
            request.account,
            request.page_size,
            request.page_token,
            [int(code) for code in request.codes],
            wire.optional_instant_us(request, "start_time"),
            wire.optional_instant_us(request, "end_time"),
        )
        return wire.statement_response(page)

    @idempotent
    def ListLots(self, request: pb.ListLotsRequest, context: grpc.ServicerContext) -> pb.ListLotsResponse:
        page = reads.list_lots(self._ctx, request.account, request.page_size, request.page_token, request.include_empty)
        return wire.lots_response(page, self._ctx.now_us())

    @idempotent
    def ListExpiringPoints(
        self, request: pb.ListExpiringPointsRequest, context: grpc.ServicerContext
    ) -> pb.ListExpiringPointsResponse:
        within_us = wire.duration_us(request.within, "within")
        return wire.expiring_response(reads.list_expiring_points(self._ctx, request.account, within_us))

    @idempotent
    def GetMonthlySummary(
        self, request: pb.GetMonthlySummaryRequest, context: grpc.ServicerContext
    ) -> pb.GetMonthlySummaryResponse:
        summary = reads.get_monthly_summary(self._ctx, request.account, request.year, request.month)
        return wire.monthly_summary_response(summary)

    @idempotent
    def ExpirePoints(self, request: pb.ExpirePointsRequest, context: grpc.ServicerContext) -> pb.ExpirePointsResponse:
        as_of = wire.calendar_date(request.as_of, "as_of") if request.HasField("as_of") else None
        outcome = expiry.expire_points(self._ctx, as_of, request.batch_size, request.max_batches)
        self._metrics.expired(outcome.points_expired)
        return wire.expire_response(outcome)

    @idempotent
    def VerifyJournal(
        self, request: pb.VerifyJournalRequest, context: grpc.ServicerContext
    ) -> pb.VerifyJournalResponse:
        return wire.verify_response(audit.verify_journal(self._ctx))

    @idempotent
    def CheckConservation(
        self, request: pb.CheckConservationRequest, context: grpc.ServicerContext
    ) -> pb.CheckConservationResponse:
        check = audit.check_conservation if request.full_audit else audit.check_conservation_incremental
        outcome = check(self._ctx)
        self._metrics.checked(outcome)
        return wire.conservation_response(outcome)

    @idempotent
    def ListJobRuns(self, request: pb.ListJobRunsRequest, context: grpc.ServicerContext) -> pb.ListJobRunsResponse:
        listed = scheduler.list_job_runs(self._ctx, request.job, request.limit, request.period)
        return wire.job_runs_response(*listed)

    @idempotent
    def StartJobRun(self, request: pb.StartJobRunRequest, context: grpc.ServicerContext) -> pb.StartJobRunResponse:
        return pb.StartJobRunResponse(run=wire.job_run(scheduler.start_job_run(self._ctx, request.job, request.period)))

    @idempotent
    def GetExpiringAhead(
        self, request: pb.GetExpiringAheadRequest, context: grpc.ServicerContext
    ) -> pb.GetExpiringAheadResponse:
        months = expiring_ahead.expiring_ahead(self._ctx, request.months_ahead)
        return pb.GetExpiringAheadResponse(
            months=[
                pb.ExpiringMonth(
                    year=int(m.period[:4]), month=int(m.period[5:]), amount_points=m.amount_points, lots=m.lots
                )
                for m in months
            ]
        )

    @idempotent
    def GetPeriodFigures(
        self, request: pb.GetPeriodFiguresRequest, context: grpc.ServicerContext
    ) -> pb.GetPeriodFiguresResponse:
        return wire.period_figures_response(periods.period_figures(self._ctx, request.year, request.month))


# Test hook (CARBON_TEST_CRASH_AT): the process dies after a call of this method has committed, before it answers,
# as a kill -9 there would leave it; the names match tests/gateway/ledger_double.py's.
CRASH_POINTS = {
    "ledger_after_post": "PostTransfers",
    "ledger_after_hold": "Hold",
    "ledger_after_hold_batch": "HoldBatch",
    "ledger_after_commit": "CommitHold",
    "ledger_after_release": "ReleaseHold",
    "ledger_after_refund": "RefundTransfer",
}
CRASH_EXIT_CODE = 137


class _DiesAfter(LedgerServiceServicer):
    """The servicer whose `method` kills the process once its work is committed, before the answer leaves."""

    def __init__(self, ctx: LedgerContext, method: str) -> None:
        super().__init__(ctx)
        real = getattr(self, method)

        def then_die(request: object, context: grpc.ServicerContext) -> object:
            real(request, context)
            os._exit(CRASH_EXIT_CODE)

        setattr(self, method, then_die)


def registrations(settings: Settings, engine: Engine, clock: Clock = system_clock) -> list[Registration]:
    """The ledger service; with CARBON_LEDGER_SCHEDULER=1 also this replica's scheduler, stopped (and its lease freed)
    after the server drains."""
    ctx = LedgerContext.from_settings(settings, engine, clock)
    crash_at = settings.extra.get("CARBON_TEST_CRASH_AT", "")
    if crash_at and crash_at not in CRASH_POINTS:
        raise SettingsError(f"CARBON_TEST_CRASH_AT must be one of {', '.join(CRASH_POINTS)}, got {crash_at!r}")
    servicer = _DiesAfter(ctx, CRASH_POINTS[crash_at]) if crash_at else LedgerServiceServicer(ctx)
    own = LedgerSettings.from_settings(settings)
    on_stop = None
    if own.scheduler:
        identity = settings.extra.get("CARBON_IDENTITY_ADDRESS", "")
        jobs = scheduler.Scheduler(
            ctx, own.schedule, own.lease, tick_s=own.tick_s, expiry_batch=own.expiry_batch,
            move_lots_batch=own.move_lots_batch,
            reminder_queue=IdentityReminders(identity, settings) if identity else None,
        )  # fmt: skip
        jobs.start()
        on_stop = jobs.stop
    add = ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server
    return [Registration(add, servicer, SERVICE_NAME, on_stop=on_stop)]
