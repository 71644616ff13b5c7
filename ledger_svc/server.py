"""gRPC servicer for carbon.ledger.v1.LedgerService: translates messages, holds no rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from functools import partial
from itertools import repeat

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from sqlalchemy import Engine

from carbon.common.v1 import common_pb2
from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from ledger_svc.domain.holds import Hold
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.posting import CarriedLot, ItemResult, Posting, Status, TransferRequest
from ledger_svc.domain.time import Clock, system_clock
from ledger_svc.service import holds, ops, postings, reads
from ledger_svc.service.context import LedgerContext
from service_kit.errors import InvalidArgument
from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name
_STATUS = {
    Status.POSTED: pb.TRANSFER_STATUS_POSTED,
    Status.ALREADY_POSTED: pb.TRANSFER_STATUS_ALREADY_POSTED,
    Status.FAILED: pb.TRANSFER_STATUS_FAILED,
}


def _us(timestamp: timestamp_pb2.Timestamp) -> int:
    return timestamp.seconds * 1_000_000 + timestamp.nanos // 1000


def _timestamp(instant_us: int) -> timestamp_pb2.Timestamp:
    seconds, micros = divmod(instant_us, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def _duration_us(duration: duration_pb2.Duration, field: str) -> int:
    if duration.seconds < 0 or duration.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    return duration.seconds * 1_000_000 + duration.nanos // 1000


def _date(value: common_pb2.Date, field: str) -> date:
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument(field, f"{value.year}-{value.month}-{value.day} is not a calendar date") from None


def _proto_date(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


class _SubMessages:
    """Dates and instants built once per response: a batch's results repeat a few of them a thousand times
    (a message assigned into another is copied, so sharing them is safe)."""

    def __init__(self) -> None:
        self._timestamps: dict[int, timestamp_pb2.Timestamp] = {}
        self._dates: dict[date, common_pb2.Date] = {}
        self._one_lot_results: dict[tuple[int, int, int, date], pb.TransferResult] = {}

    def timestamp(self, instant_us: int) -> timestamp_pb2.Timestamp:
        found = self._timestamps.get(instant_us)
        if found is None:
            found = self._timestamps[instant_us] = _timestamp(instant_us)
        return found

    def date(self, day: date) -> common_pb2.Date:
        found = self._dates.get(day)
        if found is None:
            found = self._dates[day] = _proto_date(day)
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


def _portion(portion: Portion, cache: _SubMessages | None = None) -> pb.LotPortion:
    cache = cache or _SubMessages()
    return pb.LotPortion(
        lot_id=str(portion.lot_id or ""),
        earned_on=cache.date(portion.key.earned_on),
        expires_at=cache.timestamp(portion.key.expires_at_us),
        amount_points=portion.amount_points,
    )


def _transfer_request(index: int, message: pb.Transfer) -> TransferRequest:
    carried: tuple[CarriedLot, ...] = ()
    if message.carried_lots:
        carried = tuple(
            CarriedLot(
                _date(lot.earned_on, f"transfers[{index}].carried_lots[{position}].earned_on"),
                _us(lot.expires_at),
                lot.amount_points,
            )
            for position, lot in enumerate(message.carried_lots)
        )
    # A map's keys are unique, so sorting the keys sorts the pairs; its items() view iterates in Python code.
    metadata = message.metadata
    # Positional, in field order: a frozen dataclass takes keywords a third slower.
    return TransferRequest(
        message.transfer_id,
        message.debit_account,
        message.credit_account,
        message.amount_points,
        int(message.code),
        message.linked,
        _us(message.earned_at) if message.HasField("earned_at") else 0,  # earned_at_us: 0 is now
        carried,
        message.reference,
        message.co2e_grams,
        tuple([(key, metadata[key]) for key in sorted(metadata)]) if metadata else (),
    )


def _result(result: ItemResult) -> pb.TransferResult:
    message = pb.TransferResult()
    _fill_result(message, result, _SubMessages())
    return message


def _fill_result(message: pb.TransferResult, result: ItemResult, cache: _SubMessages) -> None:
    """Fills a result in place (`results.add()` then fill: no message built twice)."""
    status = _STATUS[result.status]
    posting = result.posting
    portions = (posting.debit_lots or posting.credit_lots) if posting is not None else []
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
        key = portion.key
        add_lot(
            lot_id=str(portion.lot_id or ""),
            earned_on=cache.date(key.earned_on),
            expires_at=cache.timestamp(key.expires_at_us),
            amount_points=portion.amount_points,
        )


def _transfer(posting: Posting) -> pb.Transfer:
    return pb.Transfer(
        transfer_id=posting.transfer_id,
        debit_account=posting.debit_account,
        credit_account=posting.credit_account,
        amount_points=posting.amount_points,
        code=posting.code,  # type: ignore[arg-type]
        earned_at=_timestamp(posting.earned_at_us) if posting.earned_at_us else None,
        carried_lots=[_portion(portion) for portion in posting.credit_lots] if posting.debit_lots == [] else [],
        reference=posting.reference,
        co2e_grams=posting.co2e_grams,
        metadata=json.loads(posting.metadata_json) if posting.metadata_json else {},
    )


def _hold(hold: Hold, now_us: int) -> pb.HoldInfo:
    return pb.HoldInfo(
        hold_id=hold.hold_id,
        account=hold.account,
        amount_points=hold.amount_points,
        state=int(hold.state_at(now_us)),  # type: ignore[arg-type]
        expires_at=_timestamp(hold.expires_at_us),
        committed_points=hold.committed_points,
        code=hold.code,  # type: ignore[arg-type]
        reference=hold.reference,
        lots=[_portion(portion) for portion in hold.lots],
    )


_CREDIT_COLUMNS = ("credit_accounts", "amount_points", "earned_at_us", "references", "co2e_grams")


def _credit_requests(request: pb.PostCreditsRequest) -> list[TransferRequest]:
    """PostCredits' columns as the transfers they stand for (each column read once, in C)."""
    items: list[TransferRequest] = []
    for number, group in enumerate(request.groups):
        ids = list(group.transfer_ids)
        count = len(ids)
        columns = [list(getattr(group, name)) for name in _CREDIT_COLUMNS]
        for name, column in zip(_CREDIT_COLUMNS, columns, strict=True):
            if len(column) != count:
                raise InvalidArgument(f"groups[{number}].{name}", f"has {len(column)} entries for {count} transfer_ids")
        debit, code, metadata = group.debit_account, int(group.code), group.metadata
        shared = tuple([(key, metadata[key]) for key in sorted(metadata)]) if metadata else ()
        accounts, points, earned, references, grams = columns
        # In field order, as _transfer_request builds them (linked: False, no carried lots), each built from the
        # zipped row by tuple.__new__ in C (the class's __new__ is a Python call per transfer).
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


# TransferRequest(*row), for a row of its fields in order.
_new_transfer_request: Callable[[tuple[object, ...]], TransferRequest] = partial(tuple.__new__, TransferRequest)


class LedgerServiceServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(self, ctx: LedgerContext) -> None:
        self._ctx = ctx

    def PostTransfers(
        self, request: pb.PostTransfersRequest, context: grpc.ServicerContext
    ) -> pb.PostTransfersResponse:
        items = [_transfer_request(index, message) for index, message in enumerate(request.transfers)]
        results = postings.post_transfers(self._ctx, items)
        response = pb.PostTransfersResponse()
        add_result, cache = response.results.add, _SubMessages()
        for result in results:
            _fill_result(add_result(), result, cache)
        return response

    def PostCredits(self, request: pb.PostCreditsRequest, context: grpc.ServicerContext) -> pb.PostCreditsResponse:
        columns = postings.post_credit_columns(self._ctx, _credit_requests(request))
        response = pb.PostCreditsResponse()
        statuses = columns.statuses
        if statuses.count(Status.POSTED) == len(statuses):  # new credits (list.count compares by identity first)
            response.statuses.extend(repeat(pb.TRANSFER_STATUS_POSTED, len(statuses)))
        else:  # an enum member hashes in Python: looked up per item only when they differ
            response.statuses.extend([_STATUS[status] for status in statuses])
        response.lot_ids.extend(columns.lot_ids)
        response.posted_at_us.extend(columns.posted_at_us)
        add_failure = response.failures.add
        for index, reason, message in columns.failures:
            add_failure(index=index, reason=reason, message=message)
        return response

    def GetTransfer(self, request: pb.GetTransferRequest, context: grpc.ServicerContext) -> pb.GetTransferResponse:
        posting = postings.get_transfer(self._ctx, request.transfer_id)
        result = ItemResult(posting.transfer_id, Status.POSTED, posting=posting)
        return pb.GetTransferResponse(transfer=_transfer(posting), result=_result(result))

    def RefundTransfer(
        self, request: pb.RefundTransferRequest, context: grpc.ServicerContext
    ) -> pb.RefundTransferResponse:
        result = postings.refund_transfer(
            self._ctx, request.refund_id, request.original_transfer_id, request.amount_points, request.reason
        )
        return pb.RefundTransferResponse(result=_result(result))

    def Hold(self, request: pb.HoldRequest, context: grpc.ServicerContext) -> pb.HoldResponse:
        created = holds.hold(
            self._ctx,
            holds.HoldRequest(
                hold_id=request.hold_id,
                account=request.account,
                amount_points=request.amount_points,
                timeout_us=_duration_us(request.timeout, "timeout"),
                code=int(request.code),
                reference=request.reference,
                metadata=tuple(sorted(request.metadata.items())),
            ),
        )
        return pb.HoldResponse(hold=_hold(created, self._ctx.now_us()))

    def CommitHold(self, request: pb.CommitHoldRequest, context: grpc.ServicerContext) -> pb.CommitHoldResponse:
        hold, result = holds.commit_hold(self._ctx, request.hold_id, request.amount_points, request.credit_account)
        return pb.CommitHoldResponse(hold=_hold(hold, self._ctx.now_us()), result=_result(result))

    def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: grpc.ServicerContext) -> pb.ReleaseHoldResponse:
        hold = holds.release_hold(self._ctx, request.hold_id)
        return pb.ReleaseHoldResponse(hold=_hold(hold, self._ctx.now_us()))

    def GetHold(self, request: pb.GetHoldRequest, context: grpc.ServicerContext) -> pb.GetHoldResponse:
        hold = holds.get_hold(self._ctx, request.hold_id)
        return pb.GetHoldResponse(hold=_hold(hold, self._ctx.now_us()))

    def SweepExpiredHolds(
        self, request: pb.SweepExpiredHoldsRequest, context: grpc.ServicerContext
    ) -> pb.SweepExpiredHoldsResponse:
        return pb.SweepExpiredHoldsResponse(holds_released=holds.sweep_expired_holds(self._ctx, request.batch_size))

    def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        view = reads.get_balance(self._ctx, request.account)
        return pb.GetBalanceResponse(
            balance=pb.Balance(
                account=request.account,
                available_points=view.available_points,
                held_points=view.held_points,
                total_points=view.total_points,
                expiring_within_30_days_points=view.expiring_within_30_days_points,
            )
        )

    def ListStatementEntries(
        self, request: pb.ListStatementEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListStatementEntriesResponse:
        page = reads.list_statement_entries(
            self._ctx,
            request.account,
            request.page_size,
            request.page_token,
            [int(code) for code in request.codes],
            _us(request.start_time) if request.HasField("start_time") else 0,
            _us(request.end_time) if request.HasField("end_time") else 0,
        )
        return pb.ListStatementEntriesResponse(
            entries=[
                pb.StatementEntry(
                    transfer_id=row.transfer_id,
                    code=row.code,  # type: ignore[arg-type]
                    amount_points=row.amount_points,
                    counterparty_account=row.counterparty_account,
                    posted_at=_timestamp(row.posted_at_us),
                    reference=row.reference,
                    co2e_grams=row.co2e_grams,
                    balance_after_points=row.balance_after_points,
                )
                for row in page.entries
            ],
            next_page_token=page.next_page_token,
        )

    def ListLots(self, request: pb.ListLotsRequest, context: grpc.ServicerContext) -> pb.ListLotsResponse:
        page = reads.list_lots(self._ctx, request.account, request.page_size, request.page_token, request.include_empty)
        now_us = self._ctx.now_us()
        return pb.ListLotsResponse(
            lots=[
                pb.Lot(
                    lot_id=str(view.lot_id),
                    account=view.key.account,
                    earned_on=_proto_date(view.key.earned_on),
                    expires_at=_timestamp(view.key.expires_at_us),
                    credited_points=view.credited_points,
                    remaining_points=view.remaining_points,
                    expired=view.key.expires_at_us <= now_us,
                )
                for view in page.lots
            ],
            next_page_token=page.next_page_token,
        )

    def ListExpiringPoints(
        self, request: pb.ListExpiringPointsRequest, context: grpc.ServicerContext
    ) -> pb.ListExpiringPointsResponse:
        days = reads.list_expiring_points(self._ctx, request.account, _duration_us(request.within, "within"))
        return pb.ListExpiringPointsResponse(
            expiring=[pb.ExpiringPoints(expires_on=_proto_date(day), amount_points=points) for day, points in days]
        )

    def ExpirePoints(self, request: pb.ExpirePointsRequest, context: grpc.ServicerContext) -> pb.ExpirePointsResponse:
        as_of = _date(request.as_of, "as_of") if request.HasField("as_of") else None
        outcome = ops.expire_points(self._ctx, as_of, request.batch_size, request.max_batches)
        return pb.ExpirePointsResponse(
            lots_expired=outcome.lots_expired, points_expired=outcome.points_expired, done=outcome.done
        )

    def VerifyJournal(
        self, request: pb.VerifyJournalRequest, context: grpc.ServicerContext
    ) -> pb.VerifyJournalResponse:
        result = ops.verify_journal(self._ctx)
        return pb.VerifyJournalResponse(
            ok=result.ok,
            blocks_checked=result.blocks_checked,
            entries_checked=result.entries_checked,
            first_broken_block=result.first_broken_block,
            problem=result.problem,
        )

    def CheckConservation(
        self, request: pb.CheckConservationRequest, context: grpc.ServicerContext
    ) -> pb.CheckConservationResponse:
        result = ops.check_conservation(self._ctx)
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
        )


def registrations(settings: Settings, engine: Engine, clock: Clock = system_clock) -> list[Registration]:
    servicer = LedgerServiceServicer(LedgerContext.from_settings(settings, engine, clock))
    return [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, servicer, SERVICE_NAME)]
