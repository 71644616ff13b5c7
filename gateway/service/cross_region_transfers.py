"""Cross-region transfers: record first, then drive the steps, each idempotent by an id derived from the transfer id.

The state machine is gateway.domain.transfers (next_step); this module runs each step against the regions' ledgers
in short local transactions, never holding one open while a region is called. See
docs/adr/0601-cross-region-transfer-protocol.md.

Each step ends in one compare-and-set write that also renews the driver's lease (and records the decision with the
hold), committed together with concurrent transfers' writes; credits into a region travel with concurrent ones in
one ledger call (ADR 0619, 0620).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway import wire
from gateway.clients import RegionClients, RemoteError, call
from gateway.domain.callers import Caller, GatewayConfig
from gateway.domain.resident_authorizations import CROSS_REGION_TRANSFER, Operation
from gateway.domain.transfers import (
    FINISHED,
    Decision,
    HeldLot,
    State,
    Step,
    Timing,
    Transfer,
    TransferRequest,
    call_deadline,
    may_decide_commit,
    new_transfer,
    next_step,
    require_cross_region,
    validate_request,
)
from gateway.service.accounts import check_accounts
from gateway.service.known_accounts import KnownAccounts
from gateway.service.ledger_holds import LedgerHolds
from gateway.service.ledger_postings import LedgerPostings
from gateway.service.resident_authorizations import ResidentAuthorizations
from gateway.service.sagas import LeasedSagas, Postponed
from gateway.service.transfer_writes import Planned, TransferWrites
from gateway.store import tables
from gateway.store import transfers as store
from service_kit.clock import Clock, system_clock
from service_kit.errors import AlreadyExists, DomainError, InvalidArgument, NotFound
from service_kit.wire import from_timestamp

log = logging.getLogger("carbon.gateway.transfers")
HOLD_GONE = (ledger.HOLD_STATE_RELEASED, ledger.HOLD_STATE_EXPIRED)


class TransferService(LeasedSagas[Transfer]):
    table = tables.transfers
    finished_states = frozenset(state.value for state in FINISHED)
    unfinished_states = frozenset(state.value for state in State if state not in FINISHED)
    max_steps = 12  # a transfer needs at most 6 steps
    steps_renew_lease = True

    def __init__(
        self,
        engine: Engine,
        clients: RegionClients,
        config: GatewayConfig,
        timing: Timing | None = None,
        clock: Clock = system_clock,
        crash_at: str = "",
        retry_max: timedelta = timedelta(seconds=30),
        residents: ResidentAuthorizations | None = None,
        lease_owner: str = "",
    ) -> None:
        self.timing = timing or Timing()
        self.residents = residents or ResidentAuthorizations(None)
        super().__init__(engine, clock, self.timing.lease, retry_max, lease_owner)
        self.clients = clients
        self.config = config
        self.crash_at = crash_at
        self.known_accounts = KnownAccounts(clients)
        self.writes = TransferWrites(engine, clock, self.lease, self.lease_owner)
        self.postings = LedgerPostings(clients)
        self.holds = LedgerHolds(clients)

    # --- use cases -------------------------------------------------------------------------------------------

    def create(self, caller: Caller, request: TransferRequest, resident_authorization: str) -> Transfer:
        authorized_by = self.admit_request(caller, request, resident_authorization)
        timeout_s = self.timing.call_timeout.total_seconds()
        # A new transfer is the usual case, so the checks come first and the stored one is looked for only when they
        # refuse: a transfer recorded before is answered as it stands whatever identity says now (ADR 0610, 0613),
        # and one whose checks pass is found by the insert itself (a twin), then replayed (ADR 0622).
        try:
            # Both regions asked at once, once each for the account and its sharing consent (ADR 0614, 0623).
            check_accounts(self.clients, self.config, request, self.clock(), timeout_s)
        except DomainError as refusal:
            return self.replay_refused(request, refusal)
        return self._record(request, caller.caller_id, (), authorized_by)

    def admit_request(self, caller: Caller, request: TransferRequest, resident_authorization: str) -> str:
        """The checks made before identity is asked (the request's fields, its regions, the caller's region, the
        resident's authorization), in their order; who authorized it."""
        validate_request(request)
        self.clients.registry.route(request.from_account, "from_account")
        self.clients.registry.route(request.to_account, "to_account")
        require_cross_region(request.from_account, request.to_account)
        caller.require_region(request.from_region, "from_account")
        operation = Operation(
            CROSS_REGION_TRANSFER,
            request.from_account,
            request.to_account,
            request.transfer_id,
            request.amount_points,
        )
        return self.residents.check(resident_authorization, operation)

    def replay_refused(self, request: TransferRequest, refusal: DomainError) -> Transfer:
        """A new transfer's checks refused it: one recorded before is answered as it stands whatever identity says
        now (ADR 0610, 0613), else the refusal is raised."""
        existing = self._replay(request)
        if existing is None:
            raise refusal
        return existing

    def replay_twin(self, request: TransferRequest) -> Transfer:
        """A transfer whose insert found a twin stored first (a repeat of the request, or a concurrent one)."""
        replayed = self._replay(request)
        assert replayed is not None
        return replayed

    def start(
        self,
        request: TransferRequest,
        caller_id: str,
        carry_lots: Sequence[HeldLot] = (),
        authorized_by: str = "",
    ) -> Transfer:
        """Records (once) and drives a checked transfer; for callers inside the gateway such as redeem anywhere."""
        existing = self._replay(request)
        if existing is not None:
            return existing
        return self._record(request, caller_id, carry_lots, authorized_by)

    def _record(
        self, request: TransferRequest, caller_id: str, carry_lots: Sequence[HeldLot], authorized_by: str
    ) -> Transfer:
        """Records a transfer whose checks passed, then drives it; a twin recorded first (a repeat of the request,
        or a concurrent one) makes this a replay."""
        transfer = new_transfer(request, caller_id, self.clock(), self.timing, carry_lots, authorized_by)
        if not self.writes.record(transfer):
            return self.replay_twin(request)
        log.info("transfer recorded", extra={"transfer_id": request.transfer_id, "points": request.amount_points})
        return self.drive(request.transfer_id, leased=True, saga=transfer)

    def get(self, caller: Caller, transfer_id: str) -> Transfer:
        with self.engine.connect() as conn:
            transfer = store.get_transfer(conn, transfer_id)
        if transfer is None or not (
            caller.may_act_for_region(transfer.request.from_region)
            or caller.may_act_for_region(transfer.request.to_region)
        ):
            # Another region's transfer is reported as absent, so ids of others cannot be probed.
            raise NotFound("TRANSFER_NOT_FOUND", f"no transfer {transfer_id}", {"transfer_id": transfer_id})
        return transfer

    def list_page(
        self, caller: Caller, account_number: str, state: State | None, page_size: int, page_token: str
    ) -> tuple[list[Transfer], str]:
        """A page of transfers and the next page's token ("" after the last page)."""
        if account_number:
            region = self.clients.registry.route(account_number).region_code
            caller.require_region(region, "account_number")
            self.known_accounts.require(
                region, account_number, "account_number", self.timing.call_timeout.total_seconds()
            )
        elif not caller.operator:
            raise InvalidArgument("account_number", "is required unless the caller is a national operator")
        with self.engine.connect() as conn:
            page = store.list_transfers(conn, account_number, state, page_size + 1, page_token)
        next_token = page[page_size - 1].transfer_id if len(page) > page_size else ""
        return page[:page_size], next_token

    def _replay(self, request: TransferRequest) -> Transfer | None:
        with self.engine.connect() as conn:
            existing = store.get_transfer(conn, request.transfer_id)
        if existing is None:
            return None
        if existing.request.fingerprint() != request.fingerprint():
            raise AlreadyExists(
                "IDEMPOTENCY_KEY_REUSED",
                f"transfer {request.transfer_id} exists with a different body",
                {"transfer_id": request.transfer_id},
            )
        return existing if existing.finished else self.drive(request.transfer_id)

    # --- the saga ----------------------------------------------------------------------------------------------

    def load(self, key: str) -> Transfer:
        with self.engine.connect() as conn:
            transfer = store.get_transfer(conn, key)
        assert transfer is not None, key
        return transfer

    def claim_due(self, limit: int) -> list[Transfer]:
        """Leases up to `limit` due unfinished transfers in one statement (the recovery loop's batch)."""
        now = self.clock()
        with self.engine.begin() as conn:
            return store.claim_due(conn, sorted(self.finished_states), now, now + self.lease, limit, self.lease_owner)

    def settled(self, saga: Transfer) -> bool:
        return saga.settled

    def attempts(self, saga: Transfer) -> int:
        return saga.attempts

    def step(self, saga: Transfer) -> Transfer:
        steps: dict[Step, Callable[[Transfer], Transfer]] = {
            Step.HOLD: self._hold,
            Step.DECIDE: self._decide,
            Step.CREDIT: self._credit,
            Step.COMMIT: self._commit,
            Step.RELEASE: self._release,
            Step.REVERSE: self._reverse,
        }
        return steps[next_step(saga)](saga)

    def crash_point(self, name: str) -> None:
        """Test hook (CARBON_TEST_CRASH_AT): die like kill -9 at a named point of the protocol."""
        if self.crash_at == name:
            log.warning("test hook: crashing", extra={"at": name})
            os._exit(137)

    # --- the steps -----------------------------------------------------------------------------------------------

    def deadline(self, transfer: Transfer) -> float:
        return call_deadline(self.clock(), transfer.hold_expires_at or transfer.expires_at, self.timing)

    def after_decision_deadline(self, transfer: Transfer) -> float:
        """Once COMMIT is recorded the credit must happen even if the hold ran out (compensation then follows)."""
        return self.deadline(transfer) or self.timing.call_timeout.total_seconds()

    def _remote(self, region: str, method: Callable[..., object], request: object, timeout_s: float) -> object:
        """A region's answer; its final refusal raises RemoteError, no answer at all postpones the step."""
        try:
            return call(region, method, request, timeout_s)
        except RemoteError as error:
            if error.final:
                raise
            log.warning("region did not answer; step postponed", extra={"error": str(error)})
            raise Postponed(str(error)) from None

    def _hold(self, transfer: Transfer) -> Transfer:
        if self.clock() >= transfer.expires_at:
            return self.writes.decide(transfer, Decision.NONE, Decision.ABORT, "TRANSFER_EXPIRED")
        region = transfer.request.from_region
        try:
            answer = self._grouped(self.holds.hold, region, wire.hold_request(transfer), self.deadline(transfer))
        except RemoteError as error:
            answer = error
        held = self.writes.apply(self.plan_held(transfer, answer))
        self.after_held([held])
        return held

    def plan_held(self, transfer: Transfer, answer: ledger.HoldResponse | RemoteError) -> Planned:
        """The write A's answer to the Hold makes: its refusal (final) or a hold not pending decides ABORT; a pending
        hold is recorded HELD with the decision, in one write, still before B is touched."""
        if isinstance(answer, RemoteError):
            return self.writes.plan_decide(transfer, Decision.NONE, Decision.ABORT, answer.reason or answer.code.name)
        hold = answer.hold
        if hold.state != ledger.HOLD_STATE_PENDING:
            reason = f"HOLD_{ledger.HoldState.Name(hold.state)}"
            return self.writes.plan_decide(transfer, Decision.NONE, Decision.ABORT, reason)
        hold_expires_at = from_timestamp(hold.expires_at)
        commit = may_decide_commit(self.clock(), hold_expires_at, self.timing)
        return self.writes.plan_advance(
            transfer,
            State.HELD,
            decision=Decision.COMMIT if commit else Decision.ABORT,
            failure_reason="" if commit else "HOLD_TOO_CLOSE_TO_EXPIRY",
            hold_expires_at=hold_expires_at,
            held_lots=wire.held_lots(list(hold.lots)),
        )

    def after_held(self, written: Sequence[Transfer]) -> None:
        """The crash points once holds are recorded HELD (with a COMMIT decision: after_decision too)."""
        if any(transfer.state is State.HELD for transfer in written):
            self.crash_point("after_hold")
        if any(transfer.state is State.HELD and transfer.decision is Decision.COMMIT for transfer in written):
            self.crash_point("after_decision")

    def _decide(self, transfer: Transfer) -> Transfer:
        """For a transfer recorded HELD without a decision (by a gateway that wrote them apart)."""
        assert transfer.hold_expires_at is not None
        if not may_decide_commit(self.clock(), transfer.hold_expires_at, self.timing):
            return self.writes.decide(transfer, Decision.NONE, Decision.ABORT, "HOLD_TOO_CLOSE_TO_EXPIRY")
        decided = self.writes.decide(transfer, Decision.NONE, Decision.COMMIT)
        self.crash_point("after_decision")
        return decided

    def _credit(self, transfer: Transfer) -> Transfer:
        reason = self._post(
            transfer.request.to_region, wire.credit_posting(transfer), self.after_decision_deadline(transfer)
        )
        if reason:
            return self.credit_refused(transfer, reason)
        self.after_credit()
        return self.commit_credited(transfer)

    def credit_refused(self, transfer: Transfer, reason: str) -> Transfer:
        """B definitely refused (nothing moved there): the COMMIT decision is overturned and A released."""
        log.warning("destination refused the credit", extra={"transfer_id": transfer.transfer_id, "reason": reason})
        return self.writes.decide(transfer, Decision.COMMIT, Decision.ABORT, f"CREDIT_REFUSED_{reason}")

    def after_credit(self) -> None:
        """The crash points once B's credits are durable, before A is asked to commit."""
        self.crash_point("after_credit")
        self.crash_point("before_commit")

    def commit_credited(self, transfer: Transfer, answer: Any = None) -> Transfer:
        """After B's credit: A's hold committed (`answer`: A's answer to a CommitHold already sent, else it is sent
        now), then COMMITTED. B's credit is durable there and deduplicated by its id, so the gateway goes straight on
        to A's hold: a crash before COMMITTED is written re-sends the credit (answered as posted before) and then the
        commit. CREDITED is written only when the commit does not simply succeed: the late debit, its reversal and a
        region not answering then go on from it as before (ADR 0614)."""
        try:
            committed = self._hold_committed(transfer, answer)
        except Postponed:
            self.writes.advance(transfer, State.CREDITED)
            raise
        if committed:
            return self.writes.finish(transfer, State.COMMITTED, "")
        return self._late_debit(self.writes.advance(transfer, State.CREDITED))

    def _commit(self, transfer: Transfer) -> Transfer:
        self.crash_point("before_commit")
        if self._hold_committed(transfer):
            return self.writes.finish(transfer, State.COMMITTED, "")
        return self._late_debit(transfer)

    def _hold_committed(self, transfer: Transfer, answer: Any = None) -> bool:
        """Commits A's hold (or reads `answer`, A's answer to the commit already sent); after a refusal, asks for the
        hold: committed before (True), or gone (False). A's silence postpones the step."""
        region = transfer.request.from_region
        stub = self.clients.ledger(region)
        if answer is None:
            try:
                deadline = self.after_decision_deadline(transfer)
                answer = self._grouped(self.holds.commit, region, wire.commit_request(transfer), deadline)
            except RemoteError as error:
                answer = error
        elif isinstance(answer, RemoteError) and not answer.final:
            raise Postponed(str(answer))
        if not isinstance(answer, RemoteError):
            assert isinstance(answer, ledger.CommitHoldResponse)
            return True
        log.warning(
            "commit refused; asking for the hold", extra={"transfer_id": transfer.transfer_id, "reason": answer.reason}
        )
        found = self._remote(
            region, stub.GetHold, wire.get_hold_request(transfer), self.timing.call_timeout.total_seconds()
        )
        assert isinstance(found, ledger.GetHoldResponse)
        if found.hold.state == ledger.HOLD_STATE_COMMITTED:
            return True
        if found.hold.state not in HOLD_GONE:
            raise Postponed(f"hold is {ledger.HoldState.Name(found.hold.state)} after a refused commit")
        return False

    def _late_debit(self, transfer: Transfer) -> Transfer:
        reason = self._post(
            transfer.request.from_region, wire.late_debit_posting(transfer), self.timing.call_timeout.total_seconds()
        )
        if not reason:
            log.warning(
                "hold expired after the credit; source debited late", extra={"transfer_id": transfer.transfer_id}
            )
            return self.writes.finish(transfer, State.COMMITTED, "COMMITTED_BY_LATE_DEBIT")
        return self.writes.decide(transfer, Decision.COMMIT, Decision.REVERSE, f"LATE_DEBIT_REFUSED_{reason}")

    def _reverse(self, transfer: Transfer) -> Transfer:
        reason = self._post(
            transfer.request.to_region, wire.reversal_posting(transfer), self.timing.call_timeout.total_seconds()
        )
        if not reason:
            return self.writes.finish(transfer, State.RELEASED, "HOLD_EXPIRED_CREDIT_REVERSED")
        log.error(
            "ALERT cross-region transfer UNKNOWN: credit in destination could be neither paid for nor reversed",
            extra={"transfer_id": transfer.transfer_id, "reason": reason, "alert": "XRT_UNKNOWN"},
        )
        return self.writes.finish(transfer, State.UNKNOWN, f"REVERSAL_REFUSED_{reason}")

    def _release(self, transfer: Transfer) -> Transfer:
        region = transfer.request.from_region
        try:
            timeout_s = self.timing.call_timeout.total_seconds()
            self._grouped(self.holds.release, region, wire.release_request(transfer), timeout_s)
        except RemoteError as error:
            # No hold (it never landed), or already released / expired: the points are free either way.
            log.info("release answered", extra={"transfer_id": transfer.transfer_id, "reason": error.reason})
        return self.writes.finish(transfer, State.RELEASED, transfer.failure_reason)

    def _grouped(self, method: Callable[[str, Any, float], Any], region: str, request: Any, timeout_s: float) -> Any:
        """A hold call of A's ledger, grouped with concurrent transfers' calls of the same kind (ADR 0615): its own
        answer; its own refusal raises RemoteError, no answer at all postpones the step."""
        try:
            return method(region, request, timeout_s)
        except RemoteError as error:
            if error.final:
                raise
            log.warning("region did not answer; step postponed", extra={"error": str(error)})
            raise Postponed(str(error)) from None

    def _post(self, region: str, posting: ledger.Transfer, timeout_s: float) -> str:
        """Posts one transfer in a region's ledger, grouped with concurrent transfers' postings there: "" when it is
        posted (now or before), else the refusal's reason. A region not answering postpones the step."""
        try:
            answer: ledger.TransferResult | RemoteError = self.postings.post(region, posting, timeout_s)
        except RemoteError as error:
            answer = error
        return self.posted(answer)

    @staticmethod
    def posted(answer: ledger.TransferResult | RemoteError) -> str:
        """A posting's answer: "" when it is posted (now or before), else the refusal's reason. A final error of the
        call is raised; a region not answering postpones the step."""
        if isinstance(answer, RemoteError):
            if answer.final:
                raise answer
            log.warning("region did not answer; step postponed", extra={"error": str(answer)})
            raise Postponed(str(answer))
        return wire.refusal_reason(answer)
