"""Cross-region transfers: record first, then drive the steps, each idempotent by an id derived from the transfer id.

CREATED --Hold in A--> HELD --decision COMMIT--> credit B --> CREDITED --CommitHold in A--> COMMITTED
   any refusal before the decision: decision ABORT --ReleaseHold in A--> RELEASED (with the reason)
   A's hold expired after B was credited: debit A plainly, else take B's credit back, else UNKNOWN (alert).
Every state change is one short local transaction; no transaction is open while a region is called.
See docs/adr/0601-cross-region-transfer-protocol.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway import postings, store
from gateway.callers import Caller, GatewayConfig, Role
from gateway.clients import RegionClients, RemoteError, call
from gateway.domain import (
    Decision,
    HeldLot,
    State,
    Timing,
    Transfer,
    TransferRequest,
    call_deadline,
    hold_id,
    hold_timeout_ms,
    may_decide_commit,
    require_cross_region,
    validate_request,
)
from gateway.ownership import check_accounts
from service_kit.errors import AlreadyExists, InvalidArgument, NotFound
from service_kit.wire import from_timestamp

log = logging.getLogger("carbon.gateway.transfers")

Clock = Callable[[], datetime]
MAX_STEPS = 12  # a transfer needs at most 6 steps; the bound turns a logic error into a log line, not a spin
HOLD_GONE = (ledger.HOLD_STATE_RELEASED, ledger.HOLD_STATE_EXPIRED)


def system_clock() -> datetime:
    return datetime.now(UTC)


class Postponed(Exception):
    """A region did not answer: the step is retried later by the recovery loop."""


class TransferService:
    def __init__(
        self,
        engine: Engine,
        clients: RegionClients,
        config: GatewayConfig,
        timing: Timing | None = None,
        clock: Clock = system_clock,
        crash_at: str = "",
        retry_max: timedelta = timedelta(seconds=30),
    ) -> None:
        self.engine = engine
        self.clients = clients
        self.config = config
        self.timing = timing or Timing()
        self.clock = clock
        self.crash_at = crash_at
        self.retry_max = retry_max

    @property
    def lease(self) -> timedelta:
        """How long a driver owns a transfer per step; renewed before each step, so a crashed driver's lease
        runs out within one call timeout and the recovery loop takes over."""
        return self.timing.call_timeout + self.timing.margin

    # --- use cases -------------------------------------------------------------------------------------------

    def create(self, caller: Caller, request: TransferRequest) -> Transfer:
        validate_request(request)
        self.clients.registry.route(request.from_account, "from_account")
        self.clients.registry.route(request.to_account, "to_account")
        require_cross_region(request)
        caller.require_region(request.from_region, "from_account")
        existing = self._replay(request)
        if existing is not None:
            return existing
        check_accounts(self.clients, self.config, request, self.timing.call_timeout.total_seconds())
        return self.start(request, caller.caller_id)

    def start(self, request: TransferRequest, caller_id: str, carry_lots: Sequence[HeldLot] = ()) -> Transfer:
        """Records (once) and drives a checked transfer; for callers inside the gateway such as redeem anywhere."""
        existing = self._replay(request)
        if existing is not None:
            return existing
        now = self.clock()
        expires_at = now + self.timing.transfer_life
        transfer = Transfer(
            request, caller_id, State.CREATED, Decision.NONE, now, expires_at, hold_timeout_ms(now, expires_at)
        )
        transfer.carry_lots = list(carry_lots)
        try:
            with self.engine.begin() as conn:
                store.insert_transfer(conn, transfer, lease_until=now + self.lease)
        except IntegrityError:
            replayed = self._replay(request)
            assert replayed is not None
            return replayed
        log.info("transfer recorded", extra={"transfer_id": request.transfer_id, "points": request.amount_points})
        return self.drive(request.transfer_id, leased=True)

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

    def list(
        self, caller: Caller, account_number: str, state: State | None, page_size: int, page_token: str
    ) -> tuple[list[Transfer], str]:
        if account_number:
            region = self.clients.registry.route(account_number).region_code
            caller.require_region(region, "account_number")
        elif caller.role is not Role.OPERATOR:
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

    # --- the engine ------------------------------------------------------------------------------------------

    def drive(self, transfer_id: str, leased: bool = False) -> Transfer:
        """Runs the transfer's steps until it finishes or a region does not answer. Safe to call any time."""
        now = self.clock()
        if not leased:
            with self.engine.begin() as conn:
                claimed = store.claim(conn, transfer_id, now, now + self.lease)
            if not claimed:  # someone else is driving it right now (read outside the write transaction)
                return self.load(transfer_id)
        try:
            for _ in range(MAX_STEPS):
                transfer = self.load(transfer_id)
                if transfer.finished or transfer.state is State.UNKNOWN:
                    break
                with self.engine.begin() as conn:
                    store.renew_lease(conn, transfer_id, self.clock() + self.lease)
                self._step(transfer)
            else:
                log.error("transfer did not settle within the step bound", extra={"transfer_id": transfer_id})
        except Postponed:
            transfer = self.load(transfer_id)
            delay = min(timedelta(milliseconds=200 * 2 ** min(transfer.attempts, 10)), self.retry_max)
            with self.engine.begin() as conn:
                store.postpone(conn, transfer_id, self.clock() + delay)
            return self.load(transfer_id)
        with self.engine.begin() as conn:
            store.release_lease(conn, transfer_id)
        return self.load(transfer_id)

    def load(self, transfer_id: str) -> Transfer:
        with self.engine.connect() as conn:
            transfer = store.get_transfer(conn, transfer_id)
        assert transfer is not None, transfer_id
        return transfer

    def crash_point(self, name: str) -> None:
        """Test hook (CARBON_TEST_CRASH_AT): die like kill -9 at a named point of the protocol."""
        if self.crash_at == name:
            log.warning("test hook: crashing", extra={"at": name})
            os._exit(137)

    def _deadline(self, transfer: Transfer) -> float:
        return call_deadline(self.clock(), transfer.hold_expires_at or transfer.expires_at, self.timing)

    def _after_decision_deadline(self, transfer: Transfer) -> float:
        """Once COMMIT is recorded the credit must happen even if the hold ran out (compensation then follows)."""
        return self._deadline(transfer) or self.timing.call_timeout.total_seconds()

    def _step(self, transfer: Transfer) -> None:
        key = (transfer.state, transfer.decision)
        if key == (State.CREATED, Decision.NONE):
            self._hold(transfer)
        elif key == (State.HELD, Decision.NONE):
            self._decide(transfer)
        elif key == (State.HELD, Decision.COMMIT):
            self._credit(transfer)
        elif transfer.decision is Decision.ABORT and transfer.state in (State.CREATED, State.HELD):
            self._release(transfer)
        elif key == (State.CREDITED, Decision.COMMIT):
            self._commit(transfer)
        elif key == (State.CREDITED, Decision.REVERSE):
            self._reverse(transfer)
        else:
            raise AssertionError(f"transfer {transfer.transfer_id}: no step for {key}")

    def _remote(self, region: str, method: Callable[..., object], request: object, timeout_s: float) -> object:
        try:
            return call(region, method, request, timeout_s)
        except RemoteError as error:
            if error.final:
                raise
            log.warning("region did not answer; step postponed", extra={"error": str(error)})
            raise Postponed(str(error)) from None

    def _hold(self, transfer: Transfer) -> None:
        if self.clock() >= transfer.expires_at:
            self._set_decision(transfer, Decision.NONE, Decision.ABORT, "TRANSFER_EXPIRED")
            return
        region = transfer.request.from_region
        try:
            response = self._remote(
                region, self.clients.ledger(region).Hold, postings.hold_request(transfer), self._deadline(transfer)
            )
        except RemoteError as error:
            self._set_decision(transfer, Decision.NONE, Decision.ABORT, error.reason or error.code.name)
            return
        assert isinstance(response, ledger.HoldResponse)
        hold = response.hold
        if hold.state != ledger.HOLD_STATE_PENDING:
            self._set_decision(transfer, Decision.NONE, Decision.ABORT, f"HOLD_{ledger.HoldState.Name(hold.state)}")
            return
        with self.engine.begin() as conn:
            store.advance(
                conn,
                transfer.transfer_id,
                State.CREATED,
                State.HELD,
                hold_expires_at=from_timestamp(hold.expires_at),
                held_lots=postings.held_lots(list(hold.lots)),
            )
        self.crash_point("after_hold")

    def _decide(self, transfer: Transfer) -> None:
        assert transfer.hold_expires_at is not None
        if not may_decide_commit(self.clock(), transfer.hold_expires_at, self.timing):
            self._set_decision(transfer, Decision.NONE, Decision.ABORT, "HOLD_TOO_CLOSE_TO_EXPIRY")
            return
        self._set_decision(transfer, Decision.NONE, Decision.COMMIT)
        self.crash_point("after_decision")

    def _credit(self, transfer: Transfer) -> None:
        region = transfer.request.to_region
        request = postings.credit_request(transfer)
        response = self._remote(
            region, self.clients.ledger(region).PostTransfers, request, self._after_decision_deadline(transfer)
        )
        assert isinstance(response, ledger.PostTransfersResponse)
        ok, reason = postings.posted(response)
        if not ok:
            # B definitely refused (nothing moved there): the COMMIT decision is overturned and A released.
            log.warning("destination refused the credit", extra={"transfer_id": transfer.transfer_id, "reason": reason})
            self._set_decision(transfer, Decision.COMMIT, Decision.ABORT, f"CREDIT_REFUSED_{reason}")
            return
        with self.engine.begin() as conn:
            store.advance(conn, transfer.transfer_id, State.HELD, State.CREDITED)
        self.crash_point("after_credit")

    def _commit(self, transfer: Transfer) -> None:
        self.crash_point("before_commit")
        region = transfer.request.from_region
        stub = self.clients.ledger(region)
        try:
            response = self._remote(
                region, stub.CommitHold, postings.commit_request(transfer), self._after_decision_deadline(transfer)
            )
            assert isinstance(response, ledger.CommitHoldResponse)
            committed = True
        except RemoteError as error:
            log.warning(
                "commit refused; asking for the hold",
                extra={"transfer_id": transfer.transfer_id, "reason": error.reason},
            )
            found = self._remote(
                region,
                stub.GetHold,
                ledger.GetHoldRequest(hold_id=hold_id(transfer.transfer_id)),
                self.timing.call_timeout.total_seconds(),
            )
            assert isinstance(found, ledger.GetHoldResponse)
            committed = found.hold.state == ledger.HOLD_STATE_COMMITTED
            if not committed and found.hold.state not in HOLD_GONE:
                raise Postponed(f"hold is {ledger.HoldState.Name(found.hold.state)} after a refused commit") from None
        if committed:
            self._finish(transfer, State.CREDITED, State.COMMITTED, "")
            return
        self._late_debit(transfer)

    def _late_debit(self, transfer: Transfer) -> None:
        region = transfer.request.from_region
        response = self._remote(
            region,
            self.clients.ledger(region).PostTransfers,
            postings.late_debit_request(transfer),
            self.timing.call_timeout.total_seconds(),
        )
        assert isinstance(response, ledger.PostTransfersResponse)
        ok, reason = postings.posted(response)
        if ok:
            log.warning(
                "hold expired after the credit; source debited late", extra={"transfer_id": transfer.transfer_id}
            )
            self._finish(transfer, State.CREDITED, State.COMMITTED, "COMMITTED_BY_LATE_DEBIT")
            return
        self._set_decision(transfer, Decision.COMMIT, Decision.REVERSE, f"LATE_DEBIT_REFUSED_{reason}")

    def _reverse(self, transfer: Transfer) -> None:
        region = transfer.request.to_region
        response = self._remote(
            region,
            self.clients.ledger(region).PostTransfers,
            postings.reversal_request(transfer),
            self.timing.call_timeout.total_seconds(),
        )
        assert isinstance(response, ledger.PostTransfersResponse)
        ok, reason = postings.posted(response)
        if ok:
            self._finish(transfer, State.CREDITED, State.RELEASED, "HOLD_EXPIRED_CREDIT_REVERSED")
            return
        log.error(
            "ALERT cross-region transfer UNKNOWN: credit in destination could be neither paid for nor reversed",
            extra={"transfer_id": transfer.transfer_id, "reason": reason, "alert": "XRT_UNKNOWN"},
        )
        self._finish(transfer, State.CREDITED, State.UNKNOWN, f"REVERSAL_REFUSED_{reason}")

    def _release(self, transfer: Transfer) -> None:
        region = transfer.request.from_region
        try:
            self._remote(
                region,
                self.clients.ledger(region).ReleaseHold,
                ledger.ReleaseHoldRequest(hold_id=hold_id(transfer.transfer_id)),
                self.timing.call_timeout.total_seconds(),
            )
        except RemoteError as error:
            # No hold (it never landed), or already released / expired: the points are free either way.
            log.info("release answered", extra={"transfer_id": transfer.transfer_id, "reason": error.reason})
        self._finish(transfer, transfer.state, State.RELEASED, transfer.failure_reason)

    def _set_decision(self, transfer: Transfer, expected: Decision, decision: Decision, reason: str = "") -> None:
        with self.engine.begin() as conn:
            store.decide(conn, transfer.transfer_id, transfer.state, expected, decision, reason)

    def _finish(self, transfer: Transfer, expected: State, state: State, reason: str) -> None:
        with self.engine.begin() as conn:
            store.advance(conn, transfer.transfer_id, expected, state, failure_reason=reason, finished_at=self.clock())
        log.info("transfer finished", extra={"transfer_id": transfer.transfer_id, "state": state.value})
