"""Many cross-region transfers in one call (CreateCrossRegionTransfers), driven in lockstep so that every hop carries
the whole batch: one identity question per region, one insert, one HoldBatch per source region, the HELD writes in
one transaction, one PostTransfers per destination region, one CommitHolds per source region and one COMMITTED
statement. See docs/adr/0625-batched-cross-region-transfers.md.

Each step's answers are judged by TransferService's own code, item by item, exactly as the unary saga judges them.
An item whose answer leaves the usual path (a refusal, a region not answering, a lost compare-and-set, a hold too
close to expiry) is handed to the unary saga from where it stands (TransferService.drive_from), so its outcome,
recovery and exactly-once are the unary ones; a gateway killed mid-batch leaves leased transfers that the recovery
loop finishes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gateway import wire
from gateway.clients import RemoteError
from gateway.domain.callers import Caller
from gateway.domain.transfers import Decision, State, Step, Transfer, TransferRequest, new_transfer, next_step
from gateway.service.accounts import Answer, judge_accounts, lookup_accounts
from gateway.service.cross_region_transfers import TransferService
from gateway.service.sagas import Postponed
from service_kit.errors import DomainError, InvalidArgument

log = logging.getLogger("carbon.gateway.transfers")
MAX_BATCH_TRANSFERS = 500
# Threads that send a step's call to each region of a batch at once, and that drive items off the usual path (so
# that their own unary steps group with one another's, ADR 0615, 0619, 0620).
_REGION_CALLS = ThreadPoolExecutor(16, thread_name_prefix="batch-region-call")
_SAGAS = ThreadPoolExecutor(32, thread_name_prefix="batch-saga")

Outcome = Transfer | BaseException  # an item's transfer as it stands, or the error the unary call would have raised


class TransferBatches:
    def __init__(self, transfers: TransferService) -> None:
        self.transfers = transfers

    def create(self, caller: Caller, items: Sequence[tuple[TransferRequest, str]]) -> list[Outcome]:
        """Each item's outcome, in order, as CreateCrossRegionTransfer would answer it alone."""
        if not 1 <= len(items) <= MAX_BATCH_TRANSFERS:
            raise InvalidArgument("transfers", f"must hold 1-{MAX_BATCH_TRANSFERS} transfers", reason="BATCH_TOO_LARGE")
        seen: set[str] = set()
        for index, (request, _) in enumerate(items):
            if request.transfer_id in seen:
                field = f"transfers[{index}].transfer_id"
                raise InvalidArgument(field, "repeats an earlier item's transfer_id", reason="DUPLICATE_TRANSFER_ID")
            seen.add(request.transfer_id)
        run = _Run(self.transfers)
        admitted: list[tuple[TransferRequest, str]] = []
        for request, authorization in items:
            try:
                admitted.append((request, self.transfers.admit_request(caller, request, authorization)))
            except DomainError as error:
                run.outcomes[request.transfer_id] = error
        checked = run.check_accounts([request for request, _ in admitted])
        authorized_by = dict((request.transfer_id, by) for request, by in admitted)
        now = self.transfers.clock()
        recorded = [
            new_transfer(request, caller.caller_id, now, self.transfers.timing, (), authorized_by[request.transfer_id])
            for request in checked
        ]
        stored = self.transfers.writes.record_many(recorded)
        for transfer in recorded:
            if transfer.transfer_id not in stored:
                run.off_path(transfer.transfer_id, self.transfers.replay_twin, transfer.request)
        new = [transfer for transfer in recorded if transfer.transfer_id in stored]
        if new:
            log.info(
                "transfers recorded", extra={"transfers": len(new), "points": sum(t.request.amount_points for t in new)}
            )
        run.commit(run.credit(run.hold(new)))
        return [run.outcome(request.transfer_id) for request, _ in items]

    def drive_claimed(self, claimed: Sequence[Transfer]) -> list[Transfer]:
        """Drives transfers the recovery loop leased in lockstep as a batch from the step they are at, when that is
        the hold or the credit (a backlog recorded while a region was down, a batch whose gateway was killed), and
        waits for them all. Returns the others, for the loop to drive one by one."""
        run = _Run(self.transfers)
        at_hold = [transfer for transfer in claimed if next_step(transfer) is Step.HOLD]
        at_credit = [transfer for transfer in claimed if next_step(transfer) is Step.CREDIT]
        run.commit(run.credit([*run.hold(at_hold), *at_credit]))
        for transfer in (*at_hold, *at_credit):
            outcome = run.outcome(transfer.transfer_id)
            if not isinstance(outcome, Transfer):
                log.error("recovery failed", exc_info=outcome, extra={"transfer_id": transfer.transfer_id})
        driven = {transfer.transfer_id for transfer in (*at_hold, *at_credit)}
        return [transfer for transfer in claimed if transfer.transfer_id not in driven]


class _Run:
    """One batch on its way: the items' outcomes so far, those driven off the usual path still running."""

    def __init__(self, transfers: TransferService) -> None:
        self.transfers = transfers
        self.outcomes: dict[str, Outcome | Future[Transfer]] = {}

    def outcome(self, transfer_id: str) -> Outcome:
        outcome = self.outcomes[transfer_id]
        if not isinstance(outcome, Future):
            return outcome
        try:
            return outcome.result()
        except Exception as error:  # the error the unary call would have raised, for this item alone
            return error

    def off_path(self, transfer_id: str, work: Callable[..., Transfer], *args: Any) -> None:
        """The item goes on alone, through the unary saga's code, beside the batch."""
        self.outcomes[transfer_id] = _SAGAS.submit(work, *args)

    def drive_from(self, transfer: Transfer, step: Callable[[], Transfer]) -> None:
        self.off_path(transfer.transfer_id, self.transfers.drive_from, transfer.transfer_id, step)

    def drive_on(self, transfer: Transfer) -> None:
        """A transfer as written by the batch, to be driven on by the unary saga (a release after ABORT, ...)."""
        self.off_path(transfer.transfer_id, self.transfers.drive, transfer.transfer_id, True, transfer)

    # --- the steps --------------------------------------------------------------------------------------------------

    def check_accounts(self, requests: Sequence[TransferRequest]) -> list[TransferRequest]:
        """Asks each region once about all its accounts of the batch; returns the requests whose checks passed. A
        refused one is answered as the unary call answers it (a transfer recorded before, else the refusal)."""
        service = self.transfers
        now, timeout_s = service.clock(), service.timing.call_timeout.total_seconds()
        numbers: dict[str, list[str]] = {}
        for request in requests:
            numbers.setdefault(request.from_region, []).append(request.from_account)
            numbers.setdefault(request.to_region, []).append(request.to_account)
        waits = {
            region: lookup_accounts(service.clients, region, asked, now, timeout_s) for region, asked in numbers.items()
        }
        answers: dict[str, dict[str, Answer]] = {region: wait() for region, wait in waits.items()}
        passed = []
        for request in requests:
            pair = (answers[request.from_region][request.from_account], answers[request.to_region][request.to_account])
            try:
                judge_accounts(service.clients, service.config, request, now, timeout_s, pair)
            except DomainError as refusal:
                self.off_path(request.transfer_id, service.replay_refused, request, refusal)
                continue
            passed.append(request)
        return passed

    def hold(self, new: Sequence[Transfer]) -> list[Transfer]:
        """Holds in each source region in one call, the HELD writes (with the decisions) in one transaction; returns
        the transfers decided COMMIT."""
        service = self.transfers
        due = []
        for transfer in new:
            if service.clock() >= transfer.expires_at:
                self.drive_on(transfer)  # the unary HOLD step decides TRANSFER_EXPIRED
            else:
                due.append(transfer)
        answers = self._per_region(
            due,
            lambda t: t.request.from_region,
            lambda region, group: service.holds.send_now(
                region, "hold", [wire.hold_request(t) for t in group], min(service.deadline(t) for t in group)
            ),
        )
        planned = []
        for transfer, answer in zip(due, answers, strict=True):
            if _silent(answer):
                self.drive_from(transfer, _postponed(answer))
            else:
                planned.append(service.plan_held(transfer, answer))
        written = self._written(planned, service.writes.apply_together(planned))
        service.after_held(written)
        held = []
        for transfer in written:
            if transfer.state is State.HELD and transfer.decision is Decision.COMMIT:
                held.append(transfer)
            else:
                self.drive_on(transfer)
        return held

    def credit(self, held: Sequence[Transfer]) -> list[Transfer]:
        """Credits in each destination region in one call; returns the transfers credited."""
        service = self.transfers
        answers = self._per_region(
            held,
            lambda t: t.request.to_region,
            lambda region, group: service.postings.post_now(
                region, [wire.credit_posting(t) for t in group], min(service.after_decision_deadline(t) for t in group)
            ),
        )
        credited = []
        for transfer, answer in zip(held, answers, strict=True):
            try:
                reason = service.posted(answer)
            except (Postponed, RemoteError) as error:
                self.drive_from(transfer, _raising(error))
                continue
            if reason:
                self.drive_from(transfer, functools.partial(service.credit_refused, transfer, reason))
            else:
                credited.append(transfer)
        if credited:
            service.after_credit()
        return credited

    def commit(self, credited: Sequence[Transfer]) -> None:
        """Commits in each source region in one call, then COMMITTED for all in one statement."""
        service = self.transfers
        answers = self._per_region(
            credited,
            lambda t: t.request.from_region,
            lambda region, group: service.holds.send_now(
                region,
                "commit",
                [wire.commit_request(t) for t in group],
                min(service.after_decision_deadline(t) for t in group),
            ),
        )
        committed = []
        for transfer, answer in zip(credited, answers, strict=True):
            if isinstance(answer, RemoteError):
                self.drive_from(transfer, functools.partial(service.commit_credited, transfer, answer))
            else:
                committed.append(transfer)
        for transfer, finished in zip(committed, service.writes.finish_many(committed, State.COMMITTED), strict=True):
            if finished is None:  # another driver moved it (its lease ran out): answered as it stands
                self.off_path(transfer.transfer_id, service.load, transfer.transfer_id)
            else:
                self.outcomes[transfer.transfer_id] = finished
        if committed:
            log.info("transfers finished", extra={"transfers": len(committed), "state": State.COMMITTED.value})

    # --- plumbing ---------------------------------------------------------------------------------------------------

    def _written(self, planned: Sequence[Any], moved: Sequence[bool]) -> list[Transfer]:
        """The transfers whose planned writes moved their rows; the others are answered as they stand."""
        written = []
        for plan, ok in zip(planned, moved, strict=True):
            if ok:
                written.append(plan.after)
            else:
                log.warning(
                    "transfer moved by another driver; stepping back", extra={"transfer_id": plan.after.transfer_id}
                )
                self.off_path(plan.after.transfer_id, self.transfers.load, plan.after.transfer_id)
        return written

    @staticmethod
    def _per_region(
        transfers: Sequence[Transfer],
        region_of: Callable[[Transfer], str],
        send: Callable[[str, list[Transfer]], list[Any]],
    ) -> list[Any]:
        """Each transfer's answer, in order, from one call per region, the regions called at once."""
        groups: dict[str, list[int]] = {}
        for index, transfer in enumerate(transfers):
            groups.setdefault(region_of(transfer), []).append(index)
        sent = {
            region: _REGION_CALLS.submit(send, region, [transfers[i] for i in indexes])
            for region, indexes in groups.items()
        }
        answers: list[Any] = [None] * len(transfers)
        for region, indexes in groups.items():
            for index, answer in zip(indexes, sent[region].result(), strict=True):
                answers[index] = answer
        return answers


def _silent(answer: object) -> bool:
    return isinstance(answer, RemoteError) and not answer.final


def _postponed(answer: RemoteError) -> Callable[[], Transfer]:
    return _raising(Postponed(str(answer)))


def _raising(error: BaseException) -> Callable[[], Transfer]:
    def step() -> Transfer:
        raise error

    return step
