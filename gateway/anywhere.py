"""Redeem anywhere: a region-B reward paid with points held in region A, in one call.

CREATED --transfer A->B (ra.<id>) committed--> TRANSFERRED --Redeem in B (request ra.<id>)--> REDEEMED
   transfer there released: FAILED (nothing moved)
   redemption refused: UNWINDING --transfer B->A (ra.<id>.back) carrying the original lots--> UNWOUND
   transfer back refused: STRANDED (the points stay in the person's own account in B; alert)
State is stored before each remote step; every step is idempotent by an id derived from the request id, so the
recovery loop finishes or unwinds it after a crash. See docs/adr/0602-redeem-anywhere.md.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway import store
from gateway.callers import Caller
from gateway.clients import RemoteError, call
from gateway.domain import (
    Anywhere,
    AnywhereRequest,
    AnywhereState,
    State,
    Transfer,
    TransferRequest,
    require_cross_region,
    validate_anywhere,
)
from gateway.ownership import check_accounts
from gateway.transfers import Postponed, TransferService
from service_kit.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable

log = logging.getLogger("carbon.gateway.anywhere")
MAX_STEPS = 6
TABLE = store.anywhere


class RedeemAnywhereService:
    def __init__(self, transfers: TransferService) -> None:
        self.transfers = transfers
        self.engine = transfers.engine
        self.clients = transfers.clients

    def redeem(self, caller: Caller, request: AnywhereRequest) -> tuple[Anywhere, Transfer]:
        """The finished redemption and the transfer that paid for it; refusals raise with the reason."""
        validate_anywhere(request)
        self.clients.registry.route(request.source_account, "source_account")
        target_region = self.clients.registry.route(request.target_account, "target_account").region_code
        require_cross_region(TransferRequest("", request.source_account, request.target_account, 1))
        caller.require_region(self.clients.registry.route(request.source_account).region_code, "source_account")
        item = self._replay(request)
        if item is None:
            timeout_s = self.transfers.timing.call_timeout.total_seconds()
            amount_points = self._price(target_region, request, timeout_s)
            check_accounts(self.clients, self.transfers.config, request.there(amount_points), timeout_s)
            now = self.transfers.clock()
            fresh = Anywhere(request, caller.caller_id, amount_points, AnywhereState.CREATED, now)
            try:
                with self.engine.begin() as conn:
                    store.insert_anywhere(conn, fresh, lease_until=now + self.transfers.lease)
                item = self.drive(request.request_id, leased=True)
            except IntegrityError:
                item = self._replay(request)
                assert item is not None
        return self._outcome(item)

    def _replay(self, request: AnywhereRequest) -> Anywhere | None:
        existing = self._load(request.request_id)
        if existing is None:
            return None
        if existing.request.fingerprint() != request.fingerprint():
            raise AlreadyExists(
                "IDEMPOTENCY_KEY_REUSED",
                f"request {request.request_id} exists with a different body",
                {"request_id": request.request_id},
            )
        return existing if existing.finished else self.drive(request.request_id)

    def _price(self, region: str, request: AnywhereRequest, timeout_s: float) -> int:
        try:
            found = call(
                region,
                self.clients.rewards(region).GetReward,
                rewards.GetRewardRequest(reward_id=request.reward_id),
                timeout_s,
            )
        except RemoteError as error:
            if error.final:
                raise NotFound(
                    "REWARD_NOT_FOUND", f"no reward {request.reward_id} in region {region}", {"field": "reward_id"}
                ) from None
            raise error.as_unavailable() from None
        return int(found.reward.price_points) * request.quantity

    def _outcome(self, item: Anywhere) -> tuple[Anywhere, Transfer]:
        metadata = {"request_id": item.request.request_id, "state": item.state.value}
        if item.state is AnywhereState.REDEEMED:
            transfer = self.transfers.load(item.request.there(item.amount_points).transfer_id)
            return item, transfer
        if item.finished:
            raise FailedPrecondition(
                item.failure_reason or "REDEEM_ANYWHERE_FAILED",
                f"redeem anywhere {item.request.request_id} ended {item.state.value}: {item.failure_reason}",
                metadata,
            )
        raise Unavailable(
            "REDEEM_ANYWHERE_PENDING",
            f"redeem anywhere {item.request.request_id} is {item.state.value}; retry with the same request_id",
            metadata,
        )

    def _load(self, request_id: str) -> Anywhere | None:
        with self.engine.connect() as conn:
            return store.get_anywhere(conn, request_id)

    # --- the engine ------------------------------------------------------------------------------------------

    def drive(self, request_id: str, leased: bool = False) -> Anywhere:
        """Runs the steps until finished or a region does not answer. Safe to call any time."""
        clock = self.transfers.clock
        if not leased:
            with self.engine.begin() as conn:
                claimed = store.claim(conn, request_id, clock(), clock() + self.transfers.lease, TABLE)
            if not claimed:  # someone else is driving it; read outside the write transaction
                item = self._load(request_id)
                assert item is not None
                return item
        try:
            for _ in range(MAX_STEPS):
                item = self._load(request_id)
                assert item is not None
                if item.finished:
                    break
                with self.engine.begin() as conn:
                    store.renew_lease(conn, request_id, clock() + self.transfers.lease, TABLE)
                self._step(item)
        except Postponed:
            item = self._load(request_id)
            assert item is not None
            delay = min(timedelta(milliseconds=200 * 2 ** min(item.attempts, 10)), self.transfers.retry_max)
            with self.engine.begin() as conn:
                store.postpone(conn, request_id, clock() + delay, TABLE)
        else:
            with self.engine.begin() as conn:
                store.release_lease(conn, request_id, TABLE)
        item = self._load(request_id)
        assert item is not None
        return item

    def _step(self, item: Anywhere) -> None:
        if item.state is AnywhereState.CREATED:
            there = self.transfers.start(item.request.there(item.amount_points), item.caller_id)
            if there.state is State.COMMITTED:
                self._advance(item, AnywhereState.TRANSFERRED)
                self.transfers.crash_point("anywhere_after_transfer")
            elif there.state is State.RELEASED:
                self._advance(item, AnywhereState.FAILED, failure_reason=there.failure_reason, finished=True)
            else:
                raise Postponed(f"transfer there is {there.state.value}")
        elif item.state is AnywhereState.TRANSFERRED:
            self._redeem(item)
        elif item.state is AnywhereState.UNWINDING:
            there = self.transfers.load(item.request.there(item.amount_points).transfer_id)
            back = self.transfers.start(
                item.request.back(item.amount_points), item.caller_id, carry_lots=there.held_lots
            )
            if back.state is State.COMMITTED:
                self._advance(item, AnywhereState.UNWOUND, finished=True)
            elif back.state is State.RELEASED:
                log.error(
                    "ALERT redeem anywhere could not return the points; they stay in the target account",
                    extra={
                        "request_id": item.request.request_id,
                        "reason": back.failure_reason,
                        "alert": "RA_STRANDED",
                    },
                )
                self._advance(item, AnywhereState.STRANDED, finished=True)
            else:
                raise Postponed(f"transfer back is {back.state.value}")

    def _redeem(self, item: Anywhere) -> None:
        region = self.clients.registry.route(item.request.target_account).region_code
        request = rewards.RedeemRequest(
            request_id=item.request.redeem_request_id,
            account_number=item.request.target_account,
            reward_id=item.request.reward_id,
            quantity=item.request.quantity,
            region_code=region,
        )
        self.transfers.crash_point("anywhere_before_redeem")
        try:
            response = call(
                region,
                self.clients.rewards(region).Redeem,
                request,
                self.transfers.timing.call_timeout.total_seconds(),
            )
        except RemoteError as error:
            if not error.final:
                raise Postponed(str(error)) from None
            log.info("redemption refused; unwinding", extra={"request_id": request.request_id, "reason": error.reason})
            self._advance(item, AnywhereState.UNWINDING, failure_reason=error.reason or error.code.name)
            return
        redemption = response.redemption
        if redemption.state != rewards.REDEMPTION_STATE_COMPLETED:
            raise Postponed(f"redemption is {rewards.RedemptionState.Name(redemption.state)}")
        self._advance(
            item,
            AnywhereState.REDEEMED,
            redemption_id=redemption.redemption_id,
            voucher_codes=[voucher.code for voucher in redemption.vouchers],
            finished=True,
        )

    def _advance(
        self,
        item: Anywhere,
        state: AnywhereState,
        *,
        failure_reason: str | None = None,
        redemption_id: str | None = None,
        voucher_codes: list[str] | None = None,
        finished: bool = False,
    ) -> None:
        with self.engine.begin() as conn:
            store.advance_anywhere(
                conn,
                item.request.request_id,
                item.state,
                state,
                failure_reason=failure_reason,
                redemption_id=redemption_id,
                voucher_codes=voucher_codes,
                finished_at=self.transfers.clock() if finished else None,
            )
