"""Redeem: points for vouchers, as a state machine that survives a crash at any step (docs/adr/0300).

Reserve (one local transaction: PENDING redemption + stock + its vouchers, unseen until it completes) → one ledger
Hold that commits at once → COMPLETED (docs/adr/0303). Rows written before, or with the setting off, take the two-step
path: reserve → Hold → issue vouchers (local) → CommitHold → COMPLETED. `resolve` finishes or unwinds a PENDING
redemption from the ledger's hold state; the recovery pass and a retried request both use it. No database
transaction is open during a ledger call. The concurrent new redemptions of a reward go forward as one group
(reserved together, their Holds in one HoldBatch, completed together: docs/adr/0304 to 0306).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
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
from rewards_svc.service.reservations import MAX_GROUP, Outcome, Reservations, Reserved
from service_kit.accounts import REDEMPTION_ACCOUNT
from service_kit.clock import Clock
from service_kit.coalescing import Coalescer
from service_kit.errors import DomainError, FailedPrecondition, NotFound, Unavailable

log = logging.getLogger("carbon.rewards.redemption")

# Groups of one reward in flight at once (each reserves, sends its Holds and completes them, docs/adr/0306). One: with
# two, the first request after a group finished found the second slot free and went alone (a third of the groups
# were of one redemption, each paying a transaction, a HoldBatch call and a completion); with one, the requests that
# arrive during a group's pass make the next group (16 on average with 32 clients; ADR 0306).
SLOTS_PER_REWARD = 1

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


# A Hold's answer as its redemption reads it: the hold, the ledger's refusal of it, or the call's outage.
HoldAnswer = HoldView | LedgerRefused | LedgerUnavailable


@dataclass(frozen=True)
class _Forwarded:
    """A request's share of its group's forward pass (docs/adr/0306): its reservation outcome and, for a new
    redemption whose Hold commits at once, its Hold's answer (None: not sent with the group, a ledger without
    HoldBatch) and whether the group's completion moved it (or the error that completion raised)."""

    outcome: Outcome
    hold: HoldAnswer | None = None
    completed: bool | Exception = False


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
        # Items are the Holds one caller sends together (a group's, or one): the caller waits once for their answers.
        self._holding: Coalescer[tuple[HoldOrder, ...], tuple[HoldView | LedgerRefused, ...] | None] = Coalescer(
            self._hold_group, slots_per_key=HOLD_BATCH_SLOTS, max_size=HOLD_BATCH_SIZE
        )
        # The concurrent requests for one reward go forward as one group (docs/adr/0306): reserved in one transaction
        # (ADR 0304), their Holds in one HoldBatch (ADR 0305), completed in one transaction; each request's thread
        # waits once, for the group's leader, and then takes any detour of its own.
        self._forwarding: Coalescer[RedeemRequest, _Forwarded] = Coalescer(
            self._forward_group, slots_per_key=SLOTS_PER_REWARD, max_size=MAX_GROUP
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
        forwarded = self._forwarding.submit(request.reward_id, request, 1)
        reserved = forwarded.outcome
        if isinstance(reserved, DomainError):
            raise reserved
        if isinstance(reserved, Reserved) and reserved.redemption.hold_commit_account:
            return self._drive_at_once(reserved.redemption, reserved.vouchers, forwarded)
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

    def _forward_group(self, requests: Sequence[RedeemRequest]) -> list[_Forwarded]:
        """What the leader of a group of concurrent requests for one reward does for all of them: reserve; send the
        Holds of the new redemptions that commit at once; complete those whose Hold committed. Whatever else a
        request needs (a refusal, an outage, a retry, the two-step path) its own thread does afterwards."""
        outcomes = self._reservations.reserve_group(requests)
        at_once = [
            outcome.redemption
            for outcome in outcomes
            if isinstance(outcome, Reserved) and outcome.redemption.hold_commit_account
        ]
        if not at_once or not self._batch_holds:
            return [_Forwarded(outcome) for outcome in outcomes]
        self._checkpoint("after_vouchers")
        answers = self._send_holds([self._hold_order(redemption) for redemption in at_once])
        if answers is None:  # the ledger has no HoldBatch: each sends its own
            return [_Forwarded(outcome) for outcome in outcomes]
        holds = dict(zip((redemption.redemption_id for redemption in at_once), answers, strict=True))
        if any(isinstance(answer, HoldView) for answer in answers):
            self._checkpoint("after_hold")
        committed = [
            redemption_id
            for redemption_id, answer in holds.items()
            if isinstance(answer, HoldView) and answer.state == HoldState.COMMITTED
        ]
        completed: dict[str, bool | Exception] = {}
        if committed:
            try:
                completed = dict(zip(committed, self._reservations.complete(committed), strict=True))
            except Exception as error:  # each member whose completion it was answers with it, as alone
                completed = {redemption_id: error for redemption_id in committed}
        forwarded = []
        for outcome in outcomes:
            if isinstance(outcome, Reserved) and outcome.redemption.redemption_id in holds:
                redemption_id = outcome.redemption.redemption_id
                forwarded.append(_Forwarded(outcome, holds[redemption_id], completed.get(redemption_id, False)))
            else:
                forwarded.append(_Forwarded(outcome))
        return forwarded

    def _drive_at_once(self, redemption: Redemption, vouchers: tuple[Voucher, ...], sent: _Forwarded) -> Redemption:
        """The forward path when the vouchers were written with the redemption: one Hold that commits, then done.
        Sent and completed by its group where it could be; only a detour (a refusal, an outage, an older ledger)
        takes a pooled connection."""
        if sent.hold is None:  # not sent with the group (a ledger without HoldBatch): its own Hold, then completion
            self._checkpoint("after_vouchers")
            answer = self._hold_answer(redemption)
            completed: bool | Exception = False
            if isinstance(answer, HoldView):
                self._checkpoint("after_hold")
                completed = (
                    answer.state == HoldState.COMMITTED and self._reservations.complete([redemption.redemption_id])[0]
                )
        else:
            answer, completed = sent.hold, sent.completed
        if isinstance(answer, LedgerRefused):
            with self._engine.connect() as connection:
                if answer.key_taken:  # a hold under this id exists after all: never a refusal (ADR 0302)
                    return self._replay(connection, redemption)
                self._unwind(connection, redemption.redemption_id, answer.reason or "HOLD_REFUSED")
            raise answer.as_domain_error() from None
        if isinstance(answer, LedgerUnavailable):
            with self._engine.connect() as connection:
                return self._replay(connection, redemption)
        if isinstance(completed, Exception):
            raise completed
        if answer.state != HoldState.COMMITTED or not completed:
            # A ledger that does not commit in the Hold call yet answers PENDING; or another finisher moved it first.
            with self._engine.connect() as connection:
                return self._replay(connection, self._get(connection, redemption.redemption_id))
        return dataclasses.replace(redemption, state=RedemptionState.COMPLETED, vouchers=vouchers)

    def _hold_answer(self, redemption: Redemption) -> HoldAnswer:
        try:
            return self._send_hold(redemption)
        except (LedgerRefused, LedgerUnavailable) as error:
            return error

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

    def _hold_order(self, redemption: Redemption) -> HoldOrder:
        """The redemption's Hold, exactly as first sent (its stored timeout; the setting on rows from before)."""
        return HoldOrder(
            redemption.hold_id,
            redemption.account_number,
            redemption.amount_points,
            redemption.hold_timeout_s or self._hold_timeout_s,
            redemption.redemption_id,
            redemption.hold_commit_account,
        )

    def _send_hold(self, redemption: Redemption) -> HoldView:
        """The redemption's Hold, in one HoldBatch call with the Holds of concurrent redemptions where the ledger has
        it. Raises LedgerRefused with this Hold's own refusal, LedgerUnavailable."""
        order = self._hold_order(redemption)
        answers = self._send_holds([order])
        if answers is not None:
            (answer,) = answers
            if isinstance(answer, (LedgerRefused, LedgerUnavailable)):
                raise answer
            return answer
        return self._ledger.hold(
            order.hold_id, order.account, order.amount_points, order.timeout_s, order.reference, order.commit_to
        )

    def _send_holds(self, orders: Sequence[HoldOrder]) -> Sequence[HoldAnswer] | None:
        """The Holds' answers, in order, from HoldBatch calls shared with concurrent callers (ADR 0305); an outage or
        a refusal of the whole call is each Hold's answer, as each would have had it from its own call. None when the
        ledger has no HoldBatch (send each alone)."""
        if not self._batch_holds:
            return None
        try:
            return self._holding.submit("", tuple(orders), len(orders))
        except (LedgerRefused, LedgerUnavailable) as failure:
            return [failure] * len(orders)

    def _hold_group(self, items: Sequence[tuple[HoldOrder, ...]]) -> list[tuple[HoldView | LedgerRefused, ...] | None]:
        """One HoldBatch call for the group; None for every member when the ledger has no HoldBatch (each then sends
        its own Holds, and so does every later redemption)."""
        try:
            answers = self._ledger.hold_many([order for orders in items for order in orders])
        except HoldBatchUnsupported:
            if self._batch_holds:
                log.warning("the ledger has no HoldBatch: Holds are sent one by one")
            self._batch_holds = False
            return [None] * len(items)
        split: list[tuple[HoldView | LedgerRefused, ...] | None] = []
        start = 0
        for orders in items:
            split.append(tuple(answers[start : start + len(orders)]))
            start += len(orders)
        return split

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
