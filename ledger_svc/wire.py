"""carbon.ledger.v1 messages <-> the ledger's domain values. Bad input becomes InvalidArgument naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from functools import partial
from itertools import repeat
from typing import TypeVar

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from carbon.common.v1 import common_pb2
from carbon.ledger.v1 import ledger_service_pb2 as pb
from ledger_svc.domain.balance import BalanceView, LotView
from ledger_svc.domain.conservation import Conservation
from ledger_svc.domain.credits import CreditColumns
from ledger_svc.domain.expiry import ExpiryOutcome
from ledger_svc.domain.holds import Hold, HoldOutcome, HoldRequest, Refused
from ledger_svc.domain.jobs import JobRun
from ledger_svc.domain.journal import Verification
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.periods import PeriodFigures, first_day
from ledger_svc.domain.summary import MonthlySummary
from ledger_svc.domain.transfers import CarriedLot, ItemResult, Posting, Status, TransferRequest
from ledger_svc.service.reads import LotPage, StatementPage
from service_kit.errors import DomainError, InvalidArgument
from service_kit.wire import check_unix_us

STATUS = {
    Status.POSTED: pb.TRANSFER_STATUS_POSTED,
    Status.ALREADY_POSTED: pb.TRANSFER_STATUS_ALREADY_POSTED,
    Status.FAILED: pb.TRANSFER_STATUS_FAILED,
}


# --- well-known types ------------------------------------------------------------------------------------------------
def instant_us(timestamp: timestamp_pb2.Timestamp) -> int:
    return timestamp.seconds * 1_000_000 + timestamp.nanos // 1000


def timestamp(instant_us: int) -> timestamp_pb2.Timestamp:
    seconds, micros = divmod(instant_us, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def optional_instant_us(message: Message, field: str) -> int:
    """The instant in message.<field> as microseconds, or 0 (the ledger's "unset") when the field is unset."""
    return instant_us(getattr(message, field)) if message.HasField(field) else 0


def duration_us(duration: duration_pb2.Duration, field: str) -> int:
    if duration.seconds < 0 or duration.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    return duration.seconds * 1_000_000 + duration.nanos // 1000


def calendar_date(value: common_pb2.Date, field: str) -> date:
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument(field, f"{value.year}-{value.month}-{value.day} is not a calendar date") from None


def proto_date(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


class SubMessages:
    """Dates and instants built once per response: a batch's results repeat a few of them a thousand times
    (a message assigned into another is copied, so sharing them is safe)."""

    def __init__(self) -> None:
        self._timestamps: dict[int, timestamp_pb2.Timestamp] = {}
        self._dates: dict[date, common_pb2.Date] = {}
        self._one_lot_results: dict[tuple[int, int, int, date], pb.TransferResult] = {}

    def timestamp(self, instant_us: int) -> timestamp_pb2.Timestamp:
        found = self._timestamps.get(instant_us)
        if found is None:
            found = self._timestamps[instant_us] = timestamp(instant_us)
        return found

    def date(self, day: date) -> common_pb2.Date:
        found = self._dates.get(day)
        if found is None:
            found = self._dates[day] = proto_date(day)
        return found

    def one_lot_result(self, status: pb.TransferStatus.ValueType, posted_at_us: int, lot: LotKey) -> pb.TransferResult:
        """A result with its status, instant and one lot's dates set: the results of a credit batch differ from
        it only in the id, the lot id and the points."""
        key = (status, posted_at_us, lot.expires_at_us, lot.earned_on)
        found = self._one_lot_results.get(key)
        if found is None:
            found = self._one_lot_results[key] = pb.TransferResult(
                status=status,
                posted_at=self.timestamp(posted_at_us),
                lots=[pb.LotPortion(earned_on=self.date(lot.earned_on), expires_at=self.timestamp(lot.expires_at_us))],
            )
        return found


# --- transfers -------------------------------------------------------------------------------------------------------
def _sorted_metadata(metadata: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A protobuf map as the sorted pairs the domain keeps (its keys are unique: sorting them sorts the pairs; its
    items() view iterates in Python code)."""
    return tuple([(key, metadata[key]) for key in sorted(metadata)]) if metadata else ()


def transfer_request(index: int, message: pb.Transfer) -> TransferRequest:
    carried: tuple[CarriedLot, ...] = ()
    if message.carried_lots:
        carried = tuple(
            CarriedLot(
                calendar_date(lot.earned_on, f"transfers[{index}].carried_lots[{position}].earned_on"),
                instant_us(lot.expires_at),
                lot.amount_points,
            )
            for position, lot in enumerate(message.carried_lots)
        )
    # Positional, in field order (a test pins it against keywords): one per transfer of a batch.
    return TransferRequest(
        message.transfer_id,
        message.debit_account,
        message.credit_account,
        message.amount_points,
        int(message.code),
        message.linked,
        instant_us(message.earned_at) if message.HasField("earned_at") else 0,  # earned_at_us: 0 is now
        carried,
        message.reference,
        message.co2e_grams,
        _sorted_metadata(message.metadata),
    )


_CREDIT_COLUMNS = ("credit_accounts", "amount_points", "earned_at_us", "references", "co2e_grams")
# TransferRequest(*row) for a row of its fields in order, built by tuple.__new__ in C: one per credit of a batch
# (docs/adr/0008-per-item-values-are-named-tuples.md); a test pins the order against keywords.
_new_transfer_request: Callable[[tuple[object, ...]], TransferRequest] = partial(tuple.__new__, TransferRequest)


def credit_requests(request: pb.PostCreditsRequest) -> list[TransferRequest]:
    """PostCredits' columns as the transfers they stand for (each column read once, in C)."""
    items: list[TransferRequest] = []
    for number, group in enumerate(request.groups):
        ids = list(group.transfer_ids)
        count = len(ids)
        columns = [list(getattr(group, name)) for name in _CREDIT_COLUMNS]
        for name, column in zip(_CREDIT_COLUMNS, columns, strict=True):
            if len(column) != count:
                raise InvalidArgument(f"groups[{number}].{name}", f"has {len(column)} entries for {count} transfer_ids")
        accounts, points, earned, references, grams = columns
        check_unix_us(earned, f"groups[{number}].earned_at_us")
        debit, code, shared = group.debit_account, int(group.code), _sorted_metadata(group.metadata)
        # TransferRequest's fields in order: linked False, no carried lots, the group's metadata.
        rows = zip(
            ids,
            repeat(debit, count),
            accounts,
            points,
            repeat(code, count),
            repeat(False, count),
            earned,
            repeat((), count),
            references,
            grams,
            repeat(shared, count),
            strict=True,
        )
        items.extend(map(_new_transfer_request, rows))
    return items


def fill_result(message: pb.TransferResult, result: ItemResult, cache: SubMessages) -> None:
    """Fills a result in place (`results.add()` then fill: no message built twice)."""
    status = STATUS[result.status]
    posting = result.posting
    portions = result.lots
    if posting is not None and len(portions) == 1 and not result.failure_reason and not result.failure_message:
        # One lot, as for every credit of a batch: copying a shared template beats setting instant and dates again.
        portion = portions[0]
        message.MergeFrom(cache.one_lot_result(status, posting.posted_at_us, portion.key))
        message.transfer_id = result.transfer_id
        lot = message.lots[0]
        lot.lot_id = str(portion.lot_id or "")
        lot.amount_points = portion.amount_points
        return
    message.transfer_id = result.transfer_id
    message.status = status
    if result.failure_reason:
        message.failure_reason = result.failure_reason
    if result.failure_message:
        message.failure_message = result.failure_message
    if posting is None:
        return
    message.posted_at.CopyFrom(cache.timestamp(posting.posted_at_us))
    add_lot = message.lots.add
    for portion in portions:
        add_lot(
            lot_id=str(portion.lot_id or ""),
            earned_on=cache.date(portion.key.earned_on),
            expires_at=cache.timestamp(portion.key.expires_at_us),
            amount_points=portion.amount_points,
        )


def result_message(result: ItemResult) -> pb.TransferResult:
    message = pb.TransferResult()
    fill_result(message, result, SubMessages())
    return message


def post_transfers_response(results: Iterable[ItemResult]) -> pb.PostTransfersResponse:
    response = pb.PostTransfersResponse()
    add_result, cache = response.results.add, SubMessages()
    for result in results:
        fill_result(add_result(), result, cache)
    return response


def post_credits_response(columns: CreditColumns) -> pb.PostCreditsResponse:
    response = pb.PostCreditsResponse()
    statuses = columns.statuses
    if statuses.count(Status.POSTED) == len(statuses):  # new credits (list.count compares by identity first)
        response.statuses.extend(repeat(pb.TRANSFER_STATUS_POSTED, len(statuses)))
    else:  # an enum member hashes in Python: looked up per item only when they differ
        response.statuses.extend([STATUS[status] for status in statuses])
    response.lot_ids.extend(columns.lot_ids)
    response.posted_at_us.extend(columns.posted_at_us)
    add_failure = response.failures.add
    for failure in columns.failures:
        add_failure(index=failure.position, reason=failure.reason, message=failure.message)
    return response


def portion_message(portion: Portion, cache: SubMessages | None = None) -> pb.LotPortion:
    cache = cache or SubMessages()
    return pb.LotPortion(
        lot_id=str(portion.lot_id or ""),
        earned_on=cache.date(portion.key.earned_on),
        expires_at=cache.timestamp(portion.key.expires_at_us),
        amount_points=portion.amount_points,
    )


def transfer_message(posting: Posting) -> pb.Transfer:
    return pb.Transfer(
        transfer_id=posting.transfer_id,
        debit_account=posting.debit_account,
        credit_account=posting.credit_account,
        amount_points=posting.amount_points,
        code=posting.code,  # type: ignore[arg-type]
        earned_at=timestamp(posting.earned_at_us) if posting.earned_at_us else None,
        carried_lots=[portion_message(portion) for portion in posting.credit_lots] if posting.debit_lots == [] else [],
        reference=posting.reference,
        co2e_grams=posting.co2e_grams,
        metadata=json.loads(posting.metadata_json) if posting.metadata_json else {},
    )


# --- holds -----------------------------------------------------------------------------------------------------------
def hold_request(request: pb.HoldRequest) -> HoldRequest:
    return HoldRequest(
        hold_id=request.hold_id,
        account=request.account,
        amount_points=request.amount_points,
        timeout_us=duration_us(request.timeout, "timeout"),
        code=int(request.code),
        reference=request.reference,
        metadata=tuple(sorted(request.metadata.items())),
        commit_to_account=request.commit_to_account,
    )


def hold_message(hold: Hold, now_us: int) -> pb.HoldInfo:
    return pb.HoldInfo(
        hold_id=hold.hold_id,
        account=hold.account,
        amount_points=hold.amount_points,
        state=int(hold.state_at(now_us)),  # type: ignore[arg-type]
        expires_at=timestamp(hold.expires_at_us),
        committed_points=hold.committed_points,
        code=hold.code,  # type: ignore[arg-type]
        reference=hold.reference,
        lots=[portion_message(portion) for portion in hold.lots],
    )


HoldItemsResponse = TypeVar("HoldItemsResponse", pb.HoldBatchResponse, pb.CommitHoldsResponse, pb.ReleaseHoldsResponse)


def hold_item(request: pb.HoldRequest) -> HoldRequest | Refused:
    """A HoldBatch item: its request, or the error its wire form is refused with (an item's refusal is its own)."""
    try:
        return hold_request(request)
    except DomainError as error:
        return Refused(request.hold_id, error)


def hold_items_response(response: HoldItemsResponse, outcomes: list[HoldOutcome], now_us: int) -> HoldItemsResponse:
    """Fills a HoldBatch, CommitHolds or ReleaseHolds response: one HoldItemResult per outcome, in order."""
    add, cache = response.results.add, SubMessages()
    for outcome in outcomes:
        message = add(hold_id=outcome.hold_id, status=int(outcome.status))  # type: ignore[arg-type]
        if outcome.error is not None:
            error = outcome.error
            message.failure_code = error.code.value[0]
            message.failure_reason = error.reason
            message.failure_field = getattr(error, "field", "")
            message.failure_message = error.message
            continue
        if outcome.hold is not None:
            fill_hold(message.hold, outcome.hold, now_us, cache)
        if outcome.result is not None:
            fill_result(message.result, outcome.result, cache)
    return response


def fill_hold(message: pb.HoldInfo, hold: Hold, now_us: int, cache: SubMessages) -> None:
    """hold_message in place, with a response's shared dates and instants."""
    message.hold_id = hold.hold_id
    message.account = hold.account
    message.amount_points = hold.amount_points
    message.state = int(hold.state_at(now_us))  # type: ignore[assignment]
    message.expires_at.CopyFrom(cache.timestamp(hold.expires_at_us))
    message.committed_points = hold.committed_points
    message.code = hold.code  # type: ignore[assignment]
    message.reference = hold.reference
    add_lot = message.lots.add
    for portion in hold.lots:
        add_lot(
            lot_id=str(portion.lot_id or ""),
            earned_on=cache.date(portion.key.earned_on),
            expires_at=cache.timestamp(portion.key.expires_at_us),
            amount_points=portion.amount_points,
        )


# --- reads -----------------------------------------------------------------------------------------------------------
def balance_message(account: str, view: BalanceView) -> pb.Balance:
    return pb.Balance(
        account=account,
        available_points=view.available_points,
        held_points=view.held_points,
        total_points=view.total_points,
        expiring_within_30_days_points=view.expiring_within_30_days_points,
    )


def statement_response(page: StatementPage) -> pb.ListStatementEntriesResponse:
    return pb.ListStatementEntriesResponse(
        entries=[
            pb.StatementEntry(
                transfer_id=row.transfer_id,
                code=row.code,  # type: ignore[arg-type]
                amount_points=row.amount_points,
                counterparty_account=row.counterparty_account,
                posted_at=timestamp(row.posted_at_us),
                reference=row.reference,
                co2e_grams=row.co2e_grams,
                balance_after_points=row.balance_after_points,
            )
            for row in page.entries
        ],
        next_page_token=page.next_page_token,
    )


def lot_message(view: LotView, now_us: int) -> pb.Lot:
    return pb.Lot(
        lot_id=str(view.lot_id),
        account=view.key.account,
        earned_on=proto_date(view.key.earned_on),
        expires_at=timestamp(view.key.expires_at_us),
        credited_points=view.credited_points,
        remaining_points=view.remaining_points,
        expired=view.key.expires_at_us <= now_us,
    )


def lots_response(page: LotPage, now_us: int) -> pb.ListLotsResponse:
    return pb.ListLotsResponse(
        lots=[lot_message(view, now_us) for view in page.lots], next_page_token=page.next_page_token
    )


def expiring_response(days: list[tuple[date, int]]) -> pb.ListExpiringPointsResponse:
    return pb.ListExpiringPointsResponse(
        expiring=[pb.ExpiringPoints(expires_on=proto_date(day), amount_points=points) for day, points in days]
    )


# --- operations ------------------------------------------------------------------------------------------------------
def expire_response(outcome: ExpiryOutcome) -> pb.ExpirePointsResponse:
    return pb.ExpirePointsResponse(
        lots_expired=outcome.lots_expired, points_expired=outcome.points_expired, done=outcome.done
    )


def verify_response(result: Verification) -> pb.VerifyJournalResponse:
    return pb.VerifyJournalResponse(
        ok=result.ok,
        blocks_checked=result.blocks_checked,
        entries_checked=result.entries_checked,
        first_broken_block=result.first_broken_block,
        problem=result.problem,
    )


def conservation_response(result: Conservation) -> pb.CheckConservationResponse:
    return pb.CheckConservationResponse(
        balanced=result.balanced,
        issued_points=result.issued_points,
        outstanding_points=result.outstanding_points,
        redeemed_points=result.redeemed_points,
        expired_points=result.expired_points,
        donated_points=result.donated_points,
        net_transferred_points=result.net_transferred_points,
        adjusted_points=result.adjusted_points,
        sum_of_all_balances_points=result.sum_of_all_balances_points,
        problems=list(result.problems),
        full_audit=result.full_audit,
    )


def job_runs_response(runs: list[JobRun], holder: str, until_us: int) -> pb.ListJobRunsResponse:
    response = pb.ListJobRunsResponse(lease_holder=holder, runs=[job_run(run) for run in runs])
    if until_us:
        response.lease_expires_at.CopyFrom(timestamp(until_us))
    return response


def job_run(run: JobRun) -> pb.JobRun:
    message = pb.JobRun(
        job=run.job.value,
        period=run.period,
        state=pb.JobRunState.Value(f"JOB_RUN_STATE_{run.state.value}"),  # type: ignore[arg-type]
        started_at=timestamp(run.started_at_us),
        updated_at=timestamp(run.updated_at_us),
        items=run.items,
        points=run.points,
        batches=run.batches,
        attempts=run.attempts,
        holder=run.holder,
        error=run.error,
    )
    if run.finished_at_us:
        message.finished_at.CopyFrom(timestamp(run.finished_at_us))
    return message


def monthly_summary_response(summary: MonthlySummary) -> pb.GetMonthlySummaryResponse:
    return pb.GetMonthlySummaryResponse(
        account=summary.account,
        year=summary.month.year,
        month=summary.month.month,
        earned_points=summary.earned_points,
        redeemed_points=summary.redeemed_points,
        refunded_points=summary.refunded_points,
        expired_points=summary.expired_points,
        donated_points=summary.donated_points,
        transferred_out_points=summary.transferred_out_points,
        transferred_in_points=summary.transferred_in_points,
        adjusted_points=summary.adjusted_points,
        forfeited_points=summary.forfeited_points,
        net_change_points=summary.net_change_points,
        co2e_grams=summary.co2e_grams,
        by_behaviour=[
            pb.BehaviourSummary(behaviour=b.behaviour, credits=b.events, points=b.points, co2e_grams=b.co2e_grams)
            for b in summary.by_behaviour
        ],
        expiring_soon=[pb.ExpiringPoints(expires_on=proto_date(day), amount_points=p) for day, p in summary.expiring],
    )


def period_figures_response(figures: PeriodFigures) -> pb.GetPeriodFiguresResponse:
    month = first_day(figures.period)
    return pb.GetPeriodFiguresResponse(
        figures=pb.PeriodFigures(
            year=month.year,
            month=month.month,
            closed=figures.closed,
            closed_at=timestamp(figures.closed_at_us) if figures.closed else None,
            last_block_no=figures.last_block_no,
            entries=figures.entries,
            late_entries=figures.late_entries,
            issued_points=figures.issued_points,
            redeemed_points=figures.redeemed_points,
            refunded_points=figures.refunded_points,
            expired_points=figures.expired_points,
            donated_points=figures.donated_points,
            transferred_out_points=figures.transferred_out_points,
            transferred_in_points=figures.transferred_in_points,
            adjusted_points=figures.adjusted_points,
            forfeited_points=figures.forfeited_points,
            co2e_grams=figures.co2e_grams,
            by_behaviour=[
                pb.BehaviourSummary(behaviour=b.behaviour, credits=b.events, points=b.points, co2e_grams=b.co2e_grams)
                for b in figures.by_behaviour
            ],
            by_day=[
                pb.DayFigures(
                    day=proto_date(date.fromisoformat(d.day)),
                    issued_points=d.issued_points,
                    redeemed_points=d.redeemed_points,
                    expired_points=d.expired_points,
                    donated_points=d.donated_points,
                    co2e_grams=d.co2e_grams,
                )
                for d in figures.by_day
            ],
        )
    )
