"""Redeem: points for vouchers, as a state machine that survives a crash at any step (docs/adr/0300).

Reserve (one local transaction: PENDING redemption + stock + its vouchers, unseen until it completes) → one ledger
Hold that commits at once → COMPLETED (docs/adr/0303). Rows written before, or with the setting off, take the two-step
path: reserve → Hold → issue vouchers (local) → CommitHold → COMPLETED. `resolve` finishes or unwinds a PENDING
redemption from the ledger's hold state; the recovery pass and a retried request both use it. No database
transaction is open during a ledger call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, Engine

from rewards_svc import store
from rewards_svc.clients import (
    HoldBatchUnsupported,
    HoldOrder,
    HoldState,
    HoldView,
    Ledger,
    LedgerRefused,
    LedgerUnavailable,
)
from rewards_svc.domain.catalog import Reward
from rewards_svc.domain.redemption import RedeemRequest, Redemption, RedemptionState, validate_redeem, vouchers_for
from rewards_svc.domain.vouchers import Voucher
from rewards_svc.service.checkpoints import Checkpoint, no_checkpoint
from rewards_svc.service.idempotency import idempotency_reused
from rewards_svc.service.reservations import Reservations, Reserved
from service_kit.accounts import REDEMPTION_ACCOUNT
from service_kit.clock import Clock
from service_kit.coalescing import Coalescer
from service_kit.errors import FailedPrecondition, NotFound, Unavailable

log = logging.getLogger("carbon.rewards.redemption")

# How long after a redemption began a Hold that did not land (an outage) is placed again, while the customer may
# still be waiting; after it the redemption fails HOLD_NOT_PLACED (docs/adr/0302).
DEFAULT_HOLD_RETRY_WINDOW_S = 120
# At most this many Holds travel in one HoldBatch call (the ledger takes up to 1,000), in at most this many calls in
# flight at once (docs/adr/0305).
HOLD_BATCH_SIZE = 128
HOLD_BATCH_SLOTS = 2
# The reason of the refund that gives back the points of a hold that committed as it landed after its redemption was
# unwound (docs/adr/0303); fixed, so every attempt sends the same refund (docs/adr/0302).
UNWOUND_REFUND_REASON = "REDEMPTION_UNWOUND"


def unwound_refund_id(hold_id: str) -> str:
    return f"{hold_id}:refund:unwound"


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
        region_code: str,
        clock: Clock,
        *,
        hold_timeout_s: int = 600,
        hold_retry_window_s: int = DEFAULT_HOLD_RETRY_WINDOW_S,
        checkpoint: Checkpoint = no_checkpoint,
        commit_at_once: bool = True,
        batch_holds: bool = True,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._region_code = region_code
        self._clock = clock
        self._hold_timeout_s = hold_timeout_s
        self._hold_retry_window = timedelta(seconds=hold_retry_window_s)
        self._checkpoint = checkpoint
        # Where new redemptions' Holds commit in the same call; empty: Hold and CommitHold apart (ADR 0303).
        self._hold_commit_account = REDEMPTION_ACCOUNT if commit_at_once else ""
        self._reservations = Reservations(engine, clock, hold_timeout_s, self._hold_commit_account)
        # Concurrent Holds go to the ledger together in one HoldBatch call, each with its own answer (ADR 0305); off
        # by setting, or by itself once a ledger answers that it has no HoldBatch.
        self._batch_holds = batch_holds
        self._holding: Coalescer[HoldOrder, HoldView | LedgerRefused | None] = Coalescer(
            self._hold_group, slots_per_key=HOLD_BATCH_SLOTS, max_size=HOLD_BATCH_SIZE
        )

    def redeem(
        self, request_id: str, account_number: str, reward_id: str, quantity: int, region_code: str
    ) -> Redemption:
        """Redeems in `region_code`, or in this service's region when it is empty."""
        request = RedeemRequest(
            request_id=request_id,
            account_number=account_number,
            reward_id=reward_id,
            quantity=quantity,
            region_code=region_code or self._region_code,
        )
        validate_redeem(request)
        # Reserved in one transaction with the concurrent requests for the same reward (ADR 0304).
        reserved = self._reservations.reserve(request)
        if isinstance(reserved, Reserved) and reserved.redemption.hold_commit_account:
            return self._drive_at_once(reserved.redemption, reserved.vouchers)
        # A pooled connection for the rest of the redemption (the pool is sized to the worker threads); no
        # transaction is open while the ledger is called.
        with self._engine.connect() as connection:
            if isinstance(reserved, Reserved):
                return self._drive(connection, reserved.redemption, reserved.reward)
            if not reserved.same_request(request):
                raise idempotency_reused(request_id)
            return self._replay(connection, reserved)

    def get(self, redemption_id: str) -> Redemption:
        redemption = self.find(redemption_id=redemption_id)
        if redemption is None:
            raise NotFound("REDEMPTION_NOT_FOUND", f"no redemption {redemption_id}")
        return redemption

    def find(self, *, redemption_id: str = "", request_id: str = "") -> Redemption | None:
        with self._engine.connect() as connection:
            return store.redemptions.get(connection, redemption_id=redemption_id, request_id=request_id)

    def _replay(self, connection: Connection, redemption: Redemption) -> Redemption:
        """The answer for a redemption stored earlier: finished if it can be, else why not."""
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

    # --- steps 2 to 5: hold, vouchers, commit, complete -----------------------------------------------------------

    def _drive_at_once(self, redemption: Redemption, vouchers: tuple[Voucher, ...]) -> Redemption:
        """The forward path when the vouchers were written with the redemption: one Hold that commits, then done,
        completed in one transaction with the others finishing at the same time. Only a detour (a refusal, an
        outage, an older ledger) takes a pooled connection."""
        self._checkpoint("after_vouchers")
        try:
            hold = self._send_hold(redemption)
        except LedgerRefused as refused:
            with self._engine.connect() as connection:
                if refused.key_taken:  # a hold under this id exists after all: never a refusal (ADR 0302)
                    return self._replay(connection, redemption)
                self._unwind(connection, redemption.redemption_id, refused.reason or "HOLD_REFUSED")
            raise refused.as_domain_error() from None
        except LedgerUnavailable:
            with self._engine.connect() as connection:
                return self._replay(connection, redemption)
        self._checkpoint("after_hold")
        if hold.state != HoldState.COMMITTED or not self._reservations.complete(redemption.redemption_id):
            # A ledger that does not commit in the Hold call yet answers PENDING; or another finisher moved it first.
            with self._engine.connect() as connection:
                return self._replay(connection, self._get(connection, redemption.redemption_id))
        return dataclasses.replace(redemption, state=RedemptionState.COMPLETED, vouchers=vouchers)

    def _drive(self, connection: Connection, redemption: Redemption, reward: Reward) -> Redemption:
        """The forward path of a fresh redemption; the answer is built from what was written, not read back."""
        try:
            self._send_hold(redemption)
        except LedgerRefused as refused:
            self._unwind(connection, redemption.redemption_id, refused.reason or "HOLD_REFUSED")
            raise refused.as_domain_error() from None
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
        if hold is None and self._clock() < redemption.created_at + self._hold_retry_window:
            hold = self._place_hold_again(connection, redemption)
            if hold is None:  # refused, and unwound
                return self._get(connection, redemption_id)
        if hold is None:
            # The Hold may still be on its way (a retry racing the first attempt): unwind only if no voucher
            # proves it landed since we looked; if it lands later, recovery releases it.
            # When the Hold commits as it lands, the vouchers were written before it and prove nothing: a late
            # landing is refunded by recovery instead (ADR 0303).
            unless_vouchers_issued = not redemption.hold_commit_account
            self._unwind(
                connection, redemption_id, "HOLD_NOT_PLACED", unless_vouchers_issued=unless_vouchers_issued, watch=True
            )
        elif hold.state in (HoldState.RELEASED, HoldState.EXPIRED):
            self._unwind(connection, redemption_id, f"HOLD_{hold.state}")
        elif hold.state == HoldState.PENDING:
            self._go_forward(connection, redemption)
        else:  # committed: the points are gone, so the vouchers must exist
            self._issue_vouchers(connection, redemption)
            self._complete(connection, redemption_id)
        return self._get(connection, redemption_id)

    def _send_hold(self, redemption: Redemption) -> HoldView:
        """The redemption's Hold, exactly as first sent (its stored timeout; the setting on rows from before); in one
        HoldBatch call with the Holds of concurrent redemptions where the ledger has it. Raises LedgerRefused with
        this Hold's own refusal, LedgerUnavailable."""
        order = HoldOrder(
            redemption.hold_id,
            redemption.account_number,
            redemption.amount_points,
            redemption.hold_timeout_s or self._hold_timeout_s,
            redemption.redemption_id,
            redemption.hold_commit_account,
        )
        if self._batch_holds:
            answer = self._holding.submit("", order, 1)
            if isinstance(answer, LedgerRefused):
                raise answer
            if answer is not None:
                return answer
        return self._ledger.hold(
            order.hold_id, order.account, order.amount_points, order.timeout_s, order.reference, order.commit_to
        )

    def _hold_group(self, orders: Sequence[HoldOrder]) -> list[HoldView | LedgerRefused | None]:
        """One HoldBatch call for the group; None for every member when the ledger has no HoldBatch (each then sends
        its own Hold, and so does every later redemption)."""
        try:
            return list(self._ledger.hold_many(orders))
        except HoldBatchUnsupported:
            if self._batch_holds:
                log.warning("the ledger has no HoldBatch: Holds are sent one by one")
            self._batch_holds = False
            return [None] * len(orders)

    def _place_hold_again(self, connection: Connection, redemption: Redemption) -> HoldView | None:
        """A Hold an outage kept from landing, sent again while the customer may be waiting (idempotent by its id:
        a first attempt still on its way and this one place one hold). None when the ledger refused it: unwound."""
        try:
            return self._send_hold(redemption)
        except LedgerRefused as refused:
            if refused.key_taken:  # a hold under this id exists after all: read it, never a refusal
                return self._ledger.get_hold(redemption.hold_id)
            self._unwind(connection, redemption.redemption_id, refused.reason or "HOLD_REFUSED")
            return None

    def _go_forward(self, connection: Connection, redemption: Redemption) -> None:
        """A PENDING hold: issue the vouchers if missing and commit; a refused commit that did not land unwinds."""
        if self._issue_vouchers(connection, redemption) is None:
            if self._get(connection, redemption.redemption_id).state == RedemptionState.FAILED:
                self._release_quietly(redemption.hold_id)  # unwound meanwhile: this hold is an orphan
            return
        try:
            self._ledger.commit_hold(redemption.hold_id, REDEMPTION_ACCOUNT)
        except LedgerRefused:
            after = self._ledger.get_hold(redemption.hold_id)
            if after is None or after.state != HoldState.COMMITTED:
                self._release_quietly(redemption.hold_id)
                self._unwind(connection, redemption.redemption_id, "HOLD_COMMIT_REFUSED", watch=True)
                return
        self._complete(connection, redemption.redemption_id)

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
            planned = vouchers_for(redemption, reward, now)
            if store.vouchers.insert_new(connection, planned) == len(planned):
                return planned
            return tuple(store.vouchers.of_redemption(connection, redemption_id))  # issued by an earlier attempt

    def _complete(self, connection: Connection, redemption_id: str) -> bool:
        with connection.begin():
            return store.redemptions.set_state(
                connection, redemption_id, RedemptionState.PENDING, RedemptionState.COMPLETED, self._clock()
            )

    def _unwind(
        self,
        connection: Connection,
        redemption_id: str,
        reason: str,
        *,
        unless_vouchers_issued: bool = False,
        watch: bool = False,
    ) -> None:
        """PENDING → FAILED, once: the stock comes back and any vouchers issued are cancelled.

        With unless_vouchers_issued (we saw no hold), issued vouchers prove the hold was placed after we looked and
        may be committed any moment: then nothing changes, and the next resolve reads the hold again. With watch
        (the hold was not seen finished), recovery watches for it for the hold's timeout and releases it.
        """
        now = self._clock()
        with connection.begin():
            found = store.redemptions.get(connection, redemption_id=redemption_id)
            if found is None or found.state != RedemptionState.PENDING:
                return
            # The lock order of docs/adr/0302: the reward row (its stock), then the redemption, then its vouchers.
            store.rewards.lock_counted_stock(connection, found.reward_id)
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
            if watch:
                timeout = timedelta(seconds=redemption.hold_timeout_s or self._hold_timeout_s)
                store.redemptions.watch_hold(connection, redemption_id, now + timeout)
        log.info("redemption unwound", extra={"redemption_id": redemption_id, "reason": reason})

    def release_orphaned_holds(self, limit: int) -> int:
        """Releases the holds that landed after their redemption was unwound (refunds those that committed as they
        landed, ADR 0303), and counts both; stops watching those seen finished and those watched past the hold's
        timeout (the ledger expires them). Raises LedgerUnavailable."""
        with self._engine.connect() as connection:
            watched = store.redemptions.watched_holds(connection, limit)
        released = 0
        for item in watched:
            hold = self._ledger.get_hold(item.hold_id)
            if hold is not None and hold.state == HoldState.PENDING:
                try:
                    self._ledger.release_hold(item.hold_id)
                    released += 1
                    log.info("orphaned hold released", extra={"redemption_id": item.redemption_id})
                except LedgerRefused:  # committed or expired since we looked: read it again next pass
                    continue
            elif hold is not None and hold.state == HoldState.COMMITTED:
                if not item.hold_commit_account:
                    log.error("hold of a failed redemption committed", extra={"redemption_id": item.redemption_id})
                elif self._refund_late_commit(item):
                    released += 1
                else:
                    continue  # refused for now: read it again next pass
            elif hold is None and self._clock() < item.until:
                continue
            with self._engine.begin() as connection:
                store.redemptions.watch_hold(connection, item.redemption_id, None)
        return released

    def _refund_late_commit(self, item: store.redemptions.WatchedHold) -> bool:
        """Gives back the points of a Hold that committed as it landed after its redemption was unwound: a refund
        under a fixed id and reason, so every pass sends the same one. Raises LedgerUnavailable."""
        try:
            outcome = self._ledger.refund(
                unwound_refund_id(item.hold_id), item.hold_id, item.amount_points, UNWOUND_REFUND_REASON
            )
        except LedgerRefused as refused:
            log.error("late hold not refunded", extra={"redemption_id": item.redemption_id, "reason": refused.reason})
            return False
        if not outcome.posted:
            log.error("late hold not refunded", extra={"redemption_id": item.redemption_id})
            return False
        log.info("late hold refunded", extra={"redemption_id": item.redemption_id})
        return True

    def _release_quietly(self, hold_id: str) -> None:
        try:
            self._ledger.release_hold(hold_id)
        except (LedgerRefused, LedgerUnavailable) as error:
            # The hold times out on its own; nothing is lost, the points are only locked until then.
            log.warning("hold release failed", extra={"hold_id": hold_id, "error": str(error)})
