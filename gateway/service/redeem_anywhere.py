"""Redeem anywhere: a region-B reward paid with points held in region A, in one call.

The saga (gateway.domain.redeem_anywhere) is stored before each remote step; every step is idempotent by an id
derived from the request id, so the recovery loop finishes or unwinds it after a crash. The transfers there and back
are cross-region transfers (TransferService.start). See docs/adr/0602-redeem-anywhere.md.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway import wire
from gateway.clients import RemoteError, call
from gateway.domain.callers import Caller
from gateway.domain.redeem_anywhere import (
    REDEEM_ANYWHERE_FINISHED,
    RedeemAnywhere,
    RedeemAnywhereRequest,
    RedeemAnywhereState,
    validate_redeem_anywhere,
)
from gateway.domain.resident_authorizations import REDEEM_ANYWHERE, Operation
from gateway.domain.transfers import State, Transfer, require_cross_region
from gateway.service.accounts import check_accounts
from gateway.service.cross_region_transfers import TransferService
from gateway.service.sagas import LeasedSagas, Postponed
from gateway.store import redeem_anywhere as store
from gateway.store import tables
from gateway.store import transfers as transfer_store
from service_kit.errors import AlreadyExists, NotFound

log = logging.getLogger("carbon.gateway.anywhere")


class RedeemAnywhereService(LeasedSagas[RedeemAnywhere]):
    table = tables.redeem_anywhere
    finished_states = frozenset(state.value for state in REDEEM_ANYWHERE_FINISHED)
    unfinished_states = frozenset(state.value for state in RedeemAnywhereState if state not in REDEEM_ANYWHERE_FINISHED)
    max_steps = 6

    def __init__(self, transfers: TransferService) -> None:
        super().__init__(transfers.engine, transfers.clock, transfers.lease, transfers.retry_max, transfers.lease_owner)
        self.transfers = transfers
        self.clients = transfers.clients

    def redeem(
        self, caller: Caller, request: RedeemAnywhereRequest, resident_authorization: str
    ) -> tuple[RedeemAnywhere, Transfer | None]:
        """The operation as it stands and the transfer that pays for it (None before it is recorded). Only what is
        refused before anything is recorded raises; a refusal found later is the operation's final state (ADR 0613)."""
        validate_redeem_anywhere(request)
        source_region = self.clients.registry.route(request.source_account, "source_account").region_code
        target_region = self.clients.registry.route(request.target_account, "target_account").region_code
        require_cross_region(request.source_account, request.target_account)
        caller.require_region(source_region, "source_account")
        timeout_s = self.transfers.timing.call_timeout.total_seconds()
        with self.engine.connect() as conn:
            stored = store.get_redeem_anywhere(conn, request.request_id)
        # The resident authorized a price: the one recorded, or for a new request the reward's price now.
        amount_points = stored.amount_points if stored else self._price(target_region, request, timeout_s)
        operation = Operation(
            REDEEM_ANYWHERE,
            request.source_account,
            request.target_account,
            request.request_id,
            amount_points,
            request.reward_id,
            request.quantity,
        )
        authorized_by = self.transfers.residents.check(resident_authorization, operation)
        item = self._replay(request)
        if item is None:
            item = self._record(caller, request, amount_points, authorized_by)
        return self._outcome(item)

    def _record(
        self, caller: Caller, request: RedeemAnywhereRequest, amount_points: int, authorized_by: str
    ) -> RedeemAnywhere:
        """Checks the accounts (read-only), then records the request once and drives it."""
        timeout_s = self.transfers.timing.call_timeout.total_seconds()
        check_accounts(
            self.clients,
            self.transfers.config,
            request.there(amount_points),
            self.clock(),
            timeout_s,
            consent_fields=("source_account", "target_account"),
        )
        now = self.clock()
        fresh = RedeemAnywhere(
            request=request,
            caller_id=caller.caller_id,
            amount_points=amount_points,
            state=RedeemAnywhereState.CREATED,
            created_at=now,
            authorized_by=authorized_by,
        )
        try:
            with self.engine.begin() as conn:
                store.insert_redeem_anywhere(conn, fresh, lease_until=now + self.lease, lease_owner=self.lease_owner)
            return self.drive(request.request_id, leased=True)
        except IntegrityError:
            replayed = self._replay(request)
            assert replayed is not None
            return replayed

    def _replay(self, request: RedeemAnywhereRequest) -> RedeemAnywhere | None:
        with self.engine.connect() as conn:
            existing = store.get_redeem_anywhere(conn, request.request_id)
        if existing is None:
            return None
        if existing.request.fingerprint() != request.fingerprint():
            raise AlreadyExists(
                "IDEMPOTENCY_KEY_REUSED",
                f"request {request.request_id} exists with a different body",
                {"request_id": request.request_id},
            )
        return existing if existing.finished else self.drive(request.request_id)

    def _price(self, region: str, request: RedeemAnywhereRequest, timeout_s: float) -> int:
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

    def _outcome(self, item: RedeemAnywhere) -> tuple[RedeemAnywhere, Transfer | None]:
        with self.engine.connect() as conn:
            paid_by = transfer_store.get_transfer(conn, item.request.there(item.amount_points).transfer_id)
        return item, paid_by

    # --- the saga ----------------------------------------------------------------------------------------------

    def load(self, key: str) -> RedeemAnywhere:
        with self.engine.connect() as conn:
            item = store.get_redeem_anywhere(conn, key)
        assert item is not None, key
        return item

    def settled(self, saga: RedeemAnywhere) -> bool:
        return saga.finished

    def attempts(self, saga: RedeemAnywhere) -> int:
        return saga.attempts

    def step(self, saga: RedeemAnywhere) -> None:
        if saga.state is RedeemAnywhereState.CREATED:
            self._transfer_there(saga)
        elif saga.state is RedeemAnywhereState.TRANSFERRED:
            self._redeem(saga)
        elif saga.state is RedeemAnywhereState.UNWINDING:
            self._transfer_back(saga)

    def _transfer_there(self, item: RedeemAnywhere) -> None:
        there = self.transfers.start(
            item.request.there(item.amount_points), item.caller_id, authorized_by=item.authorized_by
        )
        if there.state is State.COMMITTED:
            self._advance(item, RedeemAnywhereState.TRANSFERRED)
            self.transfers.crash_point("anywhere_after_transfer")
        elif there.state is State.RELEASED:
            self._advance(item, RedeemAnywhereState.FAILED, failure_reason=there.failure_reason, finished=True)
        else:
            raise Postponed(f"transfer there is {there.state.value}")

    def _redeem(self, item: RedeemAnywhere) -> None:
        region = self.clients.registry.route(item.request.target_account).region_code
        request = wire.redeem_request(item, region)
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
            self._advance(item, RedeemAnywhereState.UNWINDING, failure_reason=error.reason or error.code.name)
            return
        redemption = response.redemption
        if redemption.state != rewards.REDEMPTION_STATE_COMPLETED:
            raise Postponed(f"redemption is {rewards.RedemptionState.Name(redemption.state)}")
        self._advance(
            item,
            RedeemAnywhereState.REDEEMED,
            redemption_id=redemption.redemption_id,
            voucher_codes=[voucher.code for voucher in redemption.vouchers],
            finished=True,
        )

    def _transfer_back(self, item: RedeemAnywhere) -> None:
        """The points go back carrying the lots that came over, so they keep their earned days and expiry dates."""
        there = self.transfers.load(item.request.there(item.amount_points).transfer_id)
        back = self.transfers.start(
            item.request.back(item.amount_points),
            item.caller_id,
            carry_lots=there.held_lots,
            authorized_by=item.authorized_by,
        )
        if back.state is State.COMMITTED:
            self._advance(item, RedeemAnywhereState.UNWOUND, finished=True)
        elif back.state is State.RELEASED:
            log.error(
                "ALERT redeem anywhere could not return the points; they stay in the target account",
                extra={"request_id": item.request.request_id, "reason": back.failure_reason, "alert": "RA_STRANDED"},
            )
            self._advance(item, RedeemAnywhereState.STRANDED, finished=True)
        else:
            raise Postponed(f"transfer back is {back.state.value}")

    def _advance(
        self,
        item: RedeemAnywhere,
        state: RedeemAnywhereState,
        *,
        failure_reason: str | None = None,
        redemption_id: str | None = None,
        voucher_codes: list[str] | None = None,
        finished: bool = False,
    ) -> None:
        with self.engine.begin() as conn:
            store.advance_redeem_anywhere(
                conn,
                item.request.request_id,
                item.state,
                state,
                failure_reason=failure_reason,
                redemption_id=redemption_id,
                voucher_codes=voucher_codes,
                finished_at=self.clock() if finished else None,
            )
