"""Redeem and cancel: the two use cases that move points, as a state machine that survives a crash at any step.

Redeem: reserve (one local transaction: PENDING redemption + stock) → ledger Hold → issue vouchers (local) →
ledger CommitHold → COMPLETED. `resolve` finishes or unwinds a PENDING redemption from the ledger's hold state;
the recovery pass and a retried request both use it. No database transaction is open during a ledger call.
See docs/adr/0300-redemption-state-machine.md.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable

import grpc
from sqlalchemy import Connection, Engine

from rewards_svc import store
from rewards_svc.domain import (
    UNLIMITED_STOCK,
    Clock,
    Redemption,
    RedemptionState,
    Reward,
    Usage,
    Voucher,
    VoucherState,
    check_open,
    check_redeemable,
    fingerprint,
    hold_id_for,
    limit_units,
    new_voucher_code,
    normalize_voucher_code,
    period_starts,
    plan_vouchers,
    refund_id_for,
    require_request_id,
    validate_redeem,
    voucher_expiry,
)
from rewards_svc.ledger_client import REDEMPTION_ACCOUNT, HoldState, Ledger, LedgerRefused, LedgerUnavailable
from service_kit.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)

log = logging.getLogger("carbon.rewards.redemption")

# A test hook: called with a step name ("after_hold", "after_vouchers", "after_refund_claim"); see __main__.
Checkpoint = Callable[[str], None]


def _limited(reward: Reward) -> bool:
    return bool(reward.limit_per_day or reward.limit_per_month or reward.limit_lifetime)


def no_checkpoint(_step: str) -> None:
    return None


def mirror(refused: LedgerRefused) -> DomainError:
    """The ledger's refusal as our own error, keeping its code and reason (INSUFFICIENT_POINTS stays that)."""
    metadata = dict(refused.metadata)
    if refused.code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(metadata.pop("field", "account_number"), refused.message, refused.reason, metadata)
    if refused.code == grpc.StatusCode.NOT_FOUND:
        return NotFound(refused.reason or "NOT_FOUND", refused.message, metadata)
    return FailedPrecondition(refused.reason or "LEDGER_REFUSED", refused.message, metadata)


def idempotency_reused(request_id: str) -> AlreadyExists:
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        f"request_id {request_id} was used for a different request",
        {"request_id": request_id},
    )


def pending_error(redemption_id: str) -> Unavailable:
    return Unavailable(
        "REDEMPTION_PENDING",
        "the ledger did not answer; retry with the same request_id to finish",
        {"redemption_id": redemption_id},
    )


class Redemptions:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        clock: Clock,
        *,
        hold_timeout_s: int = 600,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock = clock
        self._hold_timeout_s = hold_timeout_s
        self._checkpoint = checkpoint

    # --- redeem --------------------------------------------------------------------------------------------------

    def redeem(
        self, request_id: str, account_number: str, reward_id: str, quantity: int, region_code: str
    ) -> Redemption:
        validate_redeem(account_number, reward_id, quantity, region_code, request_id)
        # One pooled connection for the whole redemption (the pool is sized to the worker threads); no transaction
        # is open while the ledger is called.
        with self._engine.connect() as connection:
            reserved = self._reserve(connection, request_id, account_number, reward_id, quantity, region_code)
            if isinstance(reserved, Redemption):
                if not reserved.same_request(account_number, reward_id, quantity, region_code):
                    raise idempotency_reused(request_id)
                return self._replay(connection, reserved)
            return self._drive(connection, *reserved)

    def find(self, *, redemption_id: str = "", request_id: str = "") -> Redemption | None:
        with self._engine.connect() as connection:
            return store.redemptions.get(connection, redemption_id=redemption_id, request_id=request_id)

    def _replay(self, connection: Connection, redemption: Redemption) -> Redemption:
        if redemption.state == RedemptionState.PENDING:
            try:
                redemption = self._resolve(connection, redemption.redemption_id)
            except LedgerUnavailable:
                raise pending_error(redemption.redemption_id) from None
        if redemption.state == RedemptionState.FAILED:
            raise FailedPrecondition(
                redemption.failure_reason,
                f"redemption {redemption.redemption_id} failed: {redemption.failure_reason}",
                {"redemption_id": redemption.redemption_id},
            )
        if redemption.state == RedemptionState.PENDING:
            raise pending_error(redemption.redemption_id)
        return redemption

    def _reserve(
        self,
        connection: Connection,
        request_id: str,
        account_number: str,
        reward_id: str,
        quantity: int,
        region_code: str,
    ) -> Redemption | tuple[Redemption, Reward]:
        """One local transaction: the checks, the PENDING redemption and the stock it takes; or a FAILED record.

        Returns the new redemption with the reward it was checked against, or the redemption stored first under
        this request id (a retry: nothing is written). Raises the refusal of a new request.
        """
        now = self._clock()
        redemption_id = uuid.uuid4().hex
        refusal: FailedPrecondition | None = None
        with connection.begin():
            reward = store.rewards.get(connection, reward_id)
            if reward is not None and (reward.stock != UNLIMITED_STOCK or _limited(reward)):
                # Counted stock and per-account limits need redemptions of this reward one at a time.
                reward = store.rewards.get(connection, reward_id, lock=True)
            if reward is None:
                existing = store.redemptions.get(connection, request_id=request_id)
                if existing is not None:
                    return existing
                raise NotFound("REWARD_NOT_FOUND", f"no reward {reward_id}", {"reward_id": reward_id})
            if _limited(reward):
                day_start, month_start = period_starts(now)
                usage = store.redemptions.usage(connection, account_number, reward_id, day_start, month_start)
            else:
                usage = Usage(0, 0, 0)
            try:
                check_redeemable(reward, region_code, quantity, usage, now)
            except FailedPrecondition as error:
                refusal = error
            redemption = Redemption(
                redemption_id=redemption_id,
                request_id=request_id,
                account_number=account_number,
                reward_id=reward_id,
                quantity=quantity,
                region_code=region_code,
                price_points=reward.price_points,
                amount_points=reward.price_points * quantity,
                state=RedemptionState.FAILED if refusal else RedemptionState.PENDING,
                failure_reason=refusal.reason if refusal else "",
                hold_id=hold_id_for(redemption_id),
                created_at=now,
            )
            if not store.redemptions.insert(connection, redemption, limit_units(reward, quantity)):
                existing = store.redemptions.get(connection, request_id=request_id)
                assert existing is not None  # the insert met it
                return existing
            if refusal is None and reward.stock != UNLIMITED_STOCK:
                store.rewards.change_stock(connection, reward_id, -quantity)
        if refusal is not None:
            raise refusal
        return redemption, reward

    def _drive(self, connection: Connection, redemption: Redemption, reward: Reward) -> Redemption:
        """The forward path of a fresh redemption; the answer is built from what was written, not read back."""
        try:
            self._ledger.hold(
                redemption.hold_id,
                redemption.account_number,
                redemption.amount_points,
                self._hold_timeout_s,
                reference=redemption.redemption_id,
            )
        except LedgerRefused as refused:
            self._unwind(connection, redemption.redemption_id, refused.reason or "HOLD_REFUSED")
            raise mirror(refused) from None
        except LedgerUnavailable:
            return self._replay(connection, redemption)
        self._checkpoint("after_hold")
        issued = self._issue_vouchers(connection, redemption, reward)
        if issued is None:
            # Someone else unwound it while our hold was on its way: give the points back.
            self._release_quietly(redemption.hold_id)
            return self._replay(connection, self._get(connection, redemption.redemption_id))
        self._checkpoint("after_vouchers")
        try:
            self._ledger.commit_hold(redemption.hold_id, REDEMPTION_ACCOUNT)
        except (LedgerRefused, LedgerUnavailable):
            return self._replay(connection, self._get(connection, redemption.redemption_id))
        if not self._complete(connection, redemption.redemption_id):
            return self._get(connection, redemption.redemption_id)  # another finisher moved it first
        return dataclasses.replace(redemption, state=RedemptionState.COMPLETED, vouchers=issued)

    def resolve(self, redemption_id: str) -> Redemption:
        """Finishes or unwinds a PENDING redemption from the ledger's hold. Raises LedgerUnavailable."""
        with self._engine.connect() as connection:
            return self._resolve(connection, redemption_id)

    def _resolve(self, connection: Connection, redemption_id: str) -> Redemption:
        redemption = self._get(connection, redemption_id)
        if redemption.state != RedemptionState.PENDING:
            return redemption
        hold = self._ledger.get_hold(redemption.hold_id)
        if hold is None:
            # The Hold may still be on its way (a retry racing the first attempt): unwind only if no voucher
            # proves it landed since we looked.
            self._unwind(connection, redemption_id, "HOLD_NOT_PLACED", unless_vouchers_issued=True)
        elif hold.state in (HoldState.RELEASED, HoldState.EXPIRED):
            self._unwind(connection, redemption_id, f"HOLD_{hold.state}")
        elif hold.state == HoldState.PENDING:
            if self._issue_vouchers(connection, redemption) is not None:
                try:
                    self._ledger.commit_hold(redemption.hold_id, REDEMPTION_ACCOUNT)
                except LedgerRefused:
                    after = self._ledger.get_hold(redemption.hold_id)
                    if after is None or after.state != HoldState.COMMITTED:
                        self._release_quietly(redemption.hold_id)
                        self._unwind(connection, redemption_id, "HOLD_COMMIT_REFUSED")
                        return self._get(connection, redemption_id)
                self._complete(connection, redemption_id)
        else:  # committed: the points are gone, so the vouchers must exist
            self._issue_vouchers(connection, redemption)
            self._complete(connection, redemption_id)
        return self._get(connection, redemption_id)

    def _get(self, connection: Connection, redemption_id: str) -> Redemption:
        with connection.begin():
            redemption = store.redemptions.get(connection, redemption_id=redemption_id)
        if redemption is None:
            raise NotFound("REDEMPTION_NOT_FOUND", f"no redemption {redemption_id}")
        return redemption

    def _issue_vouchers(
        self, connection: Connection, redemption: Redemption, reward: Reward | None = None
    ) -> tuple[Voucher, ...] | None:
        """Creates the vouchers once, under the redemption's row lock; None when it is no longer PENDING.

        `reward` is the one the redemption was checked against (its terms and voucher lifetime); read when absent.
        """
        now = self._clock()
        redemption_id = redemption.redemption_id
        with connection.begin():
            if store.redemptions.lock_state(connection, redemption_id) != RedemptionState.PENDING:
                return None
            if reward is None:
                reward = store.rewards.get(connection, redemption.reward_id)
                assert reward is not None  # a foreign key
            planned = tuple(
                Voucher(
                    code=new_voucher_code(),
                    redemption_id=redemption_id,
                    seq=plan.seq,
                    reward_id=reward.reward_id,
                    account_number=redemption.account_number,
                    units=plan.units,
                    price_points=plan.price_points,
                    state=VoucherState.ISSUED,
                    issued_at=now,
                    expires_at=voucher_expiry(now, reward.voucher_lifetime_days),
                    used_at=None,
                    terms=reward.terms,
                )
                for plan in plan_vouchers(reward, redemption.quantity, redemption.price_points)
            )
            if store.vouchers.insert_new(connection, planned) == len(planned):
                return planned
            return tuple(store.vouchers.of_redemption(connection, redemption_id))  # issued by an earlier attempt

    def _complete(self, connection: Connection, redemption_id: str) -> bool:
        with connection.begin():
            return store.redemptions.set_state(
                connection, redemption_id, RedemptionState.PENDING, RedemptionState.COMPLETED, self._clock()
            )

    def _unwind(
        self, connection: Connection, redemption_id: str, reason: str, *, unless_vouchers_issued: bool = False
    ) -> None:
        """PENDING → FAILED, once: the stock comes back and any vouchers issued are cancelled.

        With unless_vouchers_issued (we saw no hold), issued vouchers prove the hold was placed after we looked and
        may be committed any moment: then nothing changes, and the next resolve reads the hold again.
        """
        now = self._clock()
        with connection.begin():
            if store.redemptions.lock_state(connection, redemption_id) != RedemptionState.PENDING:
                return
            redemption = store.redemptions.get(connection, redemption_id=redemption_id)
            if redemption is not None and unless_vouchers_issued and redemption.vouchers:
                log.warning("unwind skipped: vouchers prove the hold landed", extra={"redemption_id": redemption_id})
                return
            if redemption is None or not store.redemptions.set_state(
                connection, redemption_id, RedemptionState.PENDING, RedemptionState.FAILED, now, reason
            ):
                return
            store.rewards.change_stock(connection, redemption.reward_id, redemption.quantity)
            store.vouchers.cancel_of_redemption(connection, redemption_id, now)
        log.info("redemption unwound", extra={"redemption_id": redemption_id, "reason": reason})

    def _release_quietly(self, hold_id: str) -> None:
        try:
            self._ledger.release_hold(hold_id)
        except (LedgerRefused, LedgerUnavailable) as error:
            # The hold times out on its own; nothing is lost, the points are only locked until then.
            log.warning("hold release failed", extra={"hold_id": hold_id, "error": str(error)})

    # --- cancel --------------------------------------------------------------------------------------------------

    def cancel_voucher(self, request_id: str, code: str, reason: str) -> tuple[Voucher, int]:
        """An unused voucher's points back to their original lots (ledger RefundTransfer), and its stock."""
        require_request_id(request_id)
        code = normalize_voucher_code(code)
        now = self._clock()
        with self._engine.begin() as connection:
            store.vouchers.expire(connection, now, code=code)
        with self._engine.begin() as connection:
            claimed = store.requests.claim(connection, "cancel_voucher", request_id, fingerprint(code), code, now)
            if claimed is not None and claimed.fingerprint != fingerprint(code):
                raise idempotency_reused(request_id)
            found = store.vouchers.get(connection, code, lock=True)
            if found is None or found[1] != RedemptionState.COMPLETED:
                raise NotFound("VOUCHER_NOT_FOUND", "no such voucher")
            voucher, _state, hold_id, _refund_id = found
            if claimed is None or voucher.state == VoucherState.ISSUED:  # new, or a refused refund being retried
                check_open(voucher, now)
                store.vouchers.set_state(
                    connection,
                    code,
                    [VoucherState.ISSUED],
                    VoucherState.CANCELLING,
                    cancelled_at=now,
                    refund_id=refund_id_for(hold_id, voucher.seq),
                )
        self._checkpoint("after_cancel_claim")
        return self.finish_cancel(code, reason)

    def finish_cancel(self, code: str, reason: str = "voucher cancelled") -> tuple[Voucher, int]:
        """Posts the refund of a CANCELLING voucher (idempotent by its refund id), then CANCELLED and stock back."""
        with self._engine.connect() as connection:
            found = store.vouchers.get(connection, code)
        assert found is not None
        voucher, _state, hold_id, refund_id = found
        if voucher.state == VoucherState.CANCELLING:
            try:
                outcome = self._ledger.refund(refund_id, hold_id, voucher.price_points, reason or "voucher cancelled")
            except LedgerUnavailable:
                raise Unavailable(
                    "REFUND_PENDING", "the ledger did not answer; retry with the same request_id"
                ) from None
            except LedgerRefused as refused:
                self._reopen(code)
                raise mirror(refused) from None
            if not outcome.posted:
                self._reopen(code)
                raise FailedPrecondition(outcome.failure_reason, outcome.failure_message or "refund refused")
            with self._engine.begin() as connection:
                if store.vouchers.set_state(connection, code, [VoucherState.CANCELLING], VoucherState.CANCELLED):
                    store.rewards.change_stock(connection, voucher.reward_id, voucher.units)
                found = store.vouchers.get(connection, code)
            assert found is not None
            voucher = found[0]
        refunded = voucher.price_points if voucher.state == VoucherState.CANCELLED else 0
        return voucher, refunded

    def _reopen(self, code: str) -> None:
        with self._engine.begin() as connection:
            store.vouchers.set_state(
                connection, code, [VoucherState.CANCELLING], VoucherState.ISSUED, cancelled_at=None
            )
