"""Voucher use cases: list an account's vouchers, use one at a merchant (once), cancel an unused one (its points go
back to their original lots through the ledger's RefundTransfer, its stock back to the reward)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from sqlalchemy import Connection, Engine

from rewards_svc import store
from rewards_svc.clients import Ledger, LedgerRefused, LedgerUnavailable
from rewards_svc.domain.redemption import RedemptionState
from rewards_svc.domain.requests import fingerprint, require_account, require_request_id
from rewards_svc.domain.vouchers import Voucher, VoucherState, check_open, normalize_voucher_code, refund_id_for
from rewards_svc.service.checkpoints import Checkpoint, no_checkpoint
from rewards_svc.service.idempotency import idempotency_reused, once
from service_kit.clock import Clock
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from service_kit.paging import page_size

MERCHANT_ID_MAX_CHARS = 128
# The ledger keeps at most this much of a refund's reason (RefundTransferRequest.reason).
REFUND_REASON_MAX_CHARS = 256
DEFAULT_REFUND_REASON = "voucher cancelled"

log = logging.getLogger("carbon.rewards.vouchers")


class RefundConflict(FailedPrecondition):
    """The ledger holds another transfer under a voucher's refund id: the voucher stays CANCELLING (neither usable
    nor refunded) until an operator looks; retrying changes nothing."""

    def __init__(self) -> None:
        super().__init__(
            "REFUND_ID_CONFLICT", "the ledger holds another transfer under this voucher's refund id; support will help"
        )


def refund_pending() -> Unavailable:
    return Unavailable("REFUND_PENDING", "the ledger did not answer; retry with the same request_id")


def _completed_voucher(connection: Connection, code: str, *, lock: bool = False) -> store.vouchers.StoredVoucher:
    """A voucher of a COMPLETED redemption: the others are not visible to anyone yet."""
    found = store.vouchers.get(connection, code, lock=lock)
    if found is None or found.redemption_state != RedemptionState.COMPLETED:
        raise NotFound("VOUCHER_NOT_FOUND", "no such voucher")
    return found


def _voucher(connection: Connection, code: str) -> Voucher | None:
    found = store.vouchers.get(connection, code)
    return None if found is None else found.voucher


class Vouchers:
    def __init__(self, engine: Engine, ledger: Ledger, clock: Clock, *, checkpoint: Checkpoint = no_checkpoint) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock = clock
        self._checkpoint = checkpoint

    def list_vouchers(
        self, account_number: str, states: list[str], size: int, after_id: int
    ) -> tuple[list[Voucher], int]:
        """A page of the account's vouchers, newest first, and the id the next page starts after (0: no more)."""
        require_account(account_number)
        limit = page_size(size)
        with self._engine.begin() as connection:
            store.vouchers.expire(connection, self._clock(), account_number=account_number)
            listed = store.vouchers.list_page(connection, account_number, states, after_id, limit)
        next_after = listed[-1].voucher_id if len(listed) == limit else 0
        return [item.voucher for item in listed], next_after

    def use_voucher(self, request_id: str, code: str, merchant_id: str) -> Voucher:
        """A merchant uses a voucher, once; a retry of the same request returns the first answer."""
        require_request_id(request_id)
        code = normalize_voucher_code(code)
        if not 0 < len(merchant_id) <= MERCHANT_ID_MAX_CHARS:
            raise InvalidArgument("merchant_id", f"required, at most {MERCHANT_ID_MAX_CHARS} characters")
        now = self._clock()
        with self._engine.begin() as connection:
            store.vouchers.expire(connection, now, code=code)

        def use(connection: Connection, at: datetime) -> Voucher:
            voucher = _completed_voucher(connection, code, lock=True).voucher
            check_open(voucher, at)
            store.vouchers.set_state(
                connection, code, [VoucherState.ISSUED], VoucherState.USED, used_at=at, merchant_id=merchant_id
            )
            return dataclasses.replace(voucher, state=VoucherState.USED, used_at=at)

        return once(
            self._engine,
            "use_voucher",
            now=now,
            request_id=request_id,
            digest=fingerprint(code, merchant_id),
            result_ref=code,
            kind=Voucher,
            current=lambda connection: _voucher(connection, code),
            change=use,
        )

    def cancel_voucher(self, request_id: str, code: str, reason: str) -> tuple[Voucher, int]:
        """An unused voucher's points back to their original lots (ledger RefundTransfer), and its stock."""
        require_request_id(request_id)
        code = normalize_voucher_code(code)
        if len(reason) > REFUND_REASON_MAX_CHARS:
            raise InvalidArgument("reason", f"at most {REFUND_REASON_MAX_CHARS} characters")
        now = self._clock()
        with self._engine.begin() as connection:
            store.vouchers.expire(connection, now, code=code)
        with self._engine.begin() as connection:
            claimed = store.idempotency_keys.claim(
                connection, "cancel_voucher", request_id, fingerprint(code), code, now
            )
            if claimed is not None and claimed.fingerprint != fingerprint(code):
                raise idempotency_reused(request_id)
            found = _completed_voucher(connection, code, lock=True)
            voucher = found.voucher
            if claimed is None or voucher.state == VoucherState.ISSUED:  # new, or a refused refund being retried
                check_open(voucher, now)
                # The refund request is decided here, once: every later attempt sends exactly this.
                store.vouchers.set_state(
                    connection,
                    code,
                    [VoucherState.ISSUED],
                    VoucherState.CANCELLING,
                    cancelled_at=now,
                    refund_id=refund_id_for(found.hold_id, voucher.seq),
                    refund_reason=reason or DEFAULT_REFUND_REASON,
                )
        self._checkpoint("after_cancel_claim")
        return self.finish_cancel(code)

    def finish_cancel(self, code: str) -> tuple[Voucher, int]:
        """Posts the refund of a CANCELLING voucher as it was first asked for, then CANCELLED and stock back."""
        with self._engine.connect() as connection:
            found = store.vouchers.get(connection, code)
        assert found is not None
        voucher = found.voucher
        if voucher.state == VoucherState.CANCELLING:
            self._refund(found)
            with self._engine.begin() as connection:
                store.rewards.lock_counted_stock(connection, voucher.reward_id)  # lock order: reward, then voucher
                if store.vouchers.set_state(connection, code, [VoucherState.CANCELLING], VoucherState.CANCELLED):
                    store.rewards.change_stock(connection, voucher.reward_id, voucher.units)
                after = store.vouchers.get(connection, code)
            assert after is not None
            voucher = after.voucher
        refunded = voucher.price_points if voucher.state == VoucherState.CANCELLED else 0
        return voucher, refunded

    def _refund(self, found: store.vouchers.StoredVoucher) -> None:
        """The ledger's RefundTransfer of the voucher's points, repeating the stored request; only a refusal that
        proves nothing was posted puts the voucher back to ISSUED."""
        voucher = found.voucher
        try:
            outcome = self._ledger.refund(
                found.refund_id, found.hold_id, voucher.price_points, found.refund_reason or DEFAULT_REFUND_REASON
            )
        except LedgerUnavailable:
            raise refund_pending() from None
        except LedgerRefused as refused:
            if refused.key_taken:
                # The refund id is taken: by this very refund sent with another body (rows from before the reason
                # was kept), or by something else. Never a refusal: ask the ledger what the id holds.
                self._check_posted(found)
                return
            self._reopen(voucher.code)
            raise refused.as_domain_error() from None
        if not outcome.posted:
            self._reopen(voucher.code)
            raise FailedPrecondition(outcome.failure_reason, outcome.failure_message or "refund refused")

    def _check_posted(self, found: store.vouchers.StoredVoucher) -> None:
        """Returns when the ledger holds this voucher's refund as posted; otherwise the voucher stays CANCELLING
        (not usable, not refunded) for an operator, and the caller is told."""
        try:
            posted = self._ledger.find_transfer(found.refund_id)
        except (LedgerUnavailable, LedgerRefused):
            raise refund_pending() from None
        if posted is not None and (posted.kind, posted.reference, posted.amount_points) == (
            "REFUND",
            found.hold_id,
            found.voucher.price_points,
        ):
            return
        log.error("refund id taken by another transfer", extra={"refund_id": found.refund_id})
        raise RefundConflict()

    def _reopen(self, code: str) -> None:
        with self._engine.begin() as connection:
            store.vouchers.set_state(
                connection, code, [VoucherState.CANCELLING], VoucherState.ISSUED, cancelled_at=None, refund_reason=""
            )
