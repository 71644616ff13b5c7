"""Use cases of rewards_svc: the catalog, vouchers, recommendations and the recovery pass.

One method per operation; transaction boundaries are here and never span a ledger call. Redeem and cancel live in
redemption.py (`self.redemptions`), donations in charity.py (`self.charity`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine

from rewards_svc import store
from rewards_svc.catalog import Catalog
from rewards_svc.charity import Charity, Donation
from rewards_svc.domain import (
    CATEGORIES,
    REGION_CODE_PATTERN,
    CharityProject,
    Clock,
    Recommendation,
    Redemption,
    RedemptionState,
    Reward,
    Voucher,
    VoucherState,
    apply_update,
    check_open,
    fingerprint,
    normalize_voucher_code,
    recommend,
    require_account,
    require_request_id,
    validate_reward,
)
from rewards_svc.ledger_client import Ledger, LedgerRefused, LedgerUnavailable
from rewards_svc.redemption import Checkpoint, Redemptions, idempotency_reused, mirror, no_checkpoint
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from service_kit.paging import page_size

log = logging.getLogger("carbon.rewards")

RECOVERY_BATCH = 200

T = TypeVar("T")


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RecoveryReport:
    redemptions_resolved: int = 0
    cancels_finished: int = 0
    donations_finished: int = 0
    vouchers_expired: int = 0
    unresolved: int = 0


class RewardsService:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        region_code: str,
        clock: Clock = system_clock,
        *,
        hold_timeout_s: int = 600,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._region_code = region_code
        self._clock = clock
        self.charity = Charity(engine, ledger, region_code, clock)
        self.redemptions = Redemptions(engine, ledger, clock, hold_timeout_s=hold_timeout_s, checkpoint=checkpoint)

    @property
    def region_code(self) -> str:
        return self._region_code

    # --- catalog -------------------------------------------------------------------------------------------------

    def seed(self, catalog: Catalog) -> int:
        """Adds the catalog's rewards and projects that are not in the database yet; never overwrites."""
        with self._engine.begin() as connection:
            added = store.rewards.add_missing(connection, catalog.rewards, self._clock())
            return added + store.charity.add_missing_projects(connection, catalog.projects)

    def get_reward(self, reward_id: str) -> Reward:
        with self._engine.connect() as connection:
            reward = store.rewards.get(connection, reward_id)
        if reward is None:
            raise NotFound("REWARD_NOT_FOUND", f"no reward {reward_id}", {"reward_id": reward_id})
        return reward

    def list_rewards(
        self, region_code: str, category: str, include_retired: bool, size: int, after_id: str
    ) -> tuple[list[Reward], str]:
        if region_code and not REGION_CODE_PATTERN.match(region_code):
            raise InvalidArgument("region_code", "a 6-digit GB/T 2260 region code")
        if category and category not in CATEGORIES:
            raise InvalidArgument("category", f"one of {', '.join(CATEGORIES)}")
        limit = page_size(size)
        found: list[Reward] = []
        cursor = after_id
        with self._engine.connect() as connection:
            while len(found) < limit:
                batch = store.rewards.list_page(
                    connection, category=category, include_retired=include_retired, after_id=cursor, limit=limit
                )
                if not batch:
                    return found, ""
                cursor = batch[-1].reward_id
                found += [r for r in batch if not region_code or not r.region_codes or region_code in r.region_codes]
        found = found[:limit]
        return found, found[-1].reward_id

    def create_reward(self, request_id: str, reward: Reward) -> Reward:
        require_request_id(request_id)
        validate_reward(reward)
        if reward.retired:
            raise InvalidArgument("reward.retired", "a new reward cannot be retired")
        digest = fingerprint(asdict(reward))
        now = self._clock()
        with self._engine.begin() as connection:
            claimed = store.requests.claim(connection, "create_reward", request_id, digest, reward.reward_id, now)
            if claimed is not None:
                return first_response(
                    claimed, digest, request_id, Reward, lambda: store.rewards.get(connection, reward.reward_id)
                )
            if not store.rewards.insert(connection, reward, now):
                raise AlreadyExists("REWARD_EXISTS", f"reward {reward.reward_id} exists")
            store.requests.keep_response(connection, "create_reward", request_id, reward)
        return reward

    def update_reward(self, request_id: str, changes: Reward, mask: list[str]) -> Reward:
        """Changes the masked fields; a new price applies to new redemptions only (each keeps its own price)."""
        require_request_id(request_id)
        digest = fingerprint(changes.reward_id, sorted(mask), {name: getattr(changes, name) for name in mask})
        now = self._clock()
        with self._engine.begin() as connection:
            claimed = store.requests.claim(connection, "update_reward", request_id, digest, changes.reward_id, now)
            if claimed is not None:
                return first_response(
                    claimed, digest, request_id, Reward, lambda: store.rewards.get(connection, changes.reward_id)
                )
            current = store.rewards.get(connection, changes.reward_id, lock=True)
            if current is None:
                raise NotFound("REWARD_NOT_FOUND", f"no reward {changes.reward_id}")
            updated = apply_update(current, changes, mask)
            store.rewards.save(connection, updated, now)
            store.requests.keep_response(connection, "update_reward", request_id, updated)
        return updated

    def retire_reward(self, request_id: str, reward_id: str) -> Reward:
        require_request_id(request_id)
        digest = fingerprint(reward_id)
        now = self._clock()
        with self._engine.begin() as connection:
            claimed = store.requests.claim(connection, "retire_reward", request_id, digest, reward_id, now)
            if claimed is not None:
                return first_response(
                    claimed, digest, request_id, Reward, lambda: store.rewards.get(connection, reward_id)
                )
            current = store.rewards.get(connection, reward_id, lock=True)
            if current is None:
                raise NotFound("REWARD_NOT_FOUND", f"no reward {reward_id}")
            retired = dataclasses.replace(current, retired=True)
            if not current.retired:
                store.rewards.save(connection, retired, now)
            store.requests.keep_response(connection, "retire_reward", request_id, retired)
        return retired

    # --- redemptions and vouchers --------------------------------------------------------------------------------

    def redeem(
        self, request_id: str, account_number: str, reward_id: str, quantity: int, region_code: str
    ) -> Redemption:
        return self.redemptions.redeem(
            request_id, account_number, reward_id, quantity, region_code or self._region_code
        )

    def get_redemption(self, redemption_id: str) -> Redemption:
        redemption = self.redemptions.find(redemption_id=redemption_id)
        if redemption is None:
            raise NotFound("REDEMPTION_NOT_FOUND", f"no redemption {redemption_id}")
        return redemption

    def list_vouchers(
        self, account_number: str, states: list[str], size: int, after_id: int
    ) -> tuple[list[Voucher], int]:
        require_account(account_number)
        limit = page_size(size)
        with self._engine.begin() as connection:
            store.vouchers.expire(connection, self._clock(), account_number=account_number)
            rows = store.vouchers.list_page(connection, account_number, states, after_id, limit)
        next_after = rows[-1][0] if len(rows) == limit else 0
        return [voucher for _id, voucher in rows], next_after

    def use_voucher(self, request_id: str, code: str, merchant_id: str) -> Voucher:
        """A merchant uses a voucher, once; a retry of the same request returns the first answer."""
        require_request_id(request_id)
        code = normalize_voucher_code(code)
        if not 0 < len(merchant_id) <= 128:
            raise InvalidArgument("merchant_id", "required, at most 128 characters")
        digest = fingerprint(code, merchant_id)
        now = self._clock()
        with self._engine.begin() as connection:
            store.vouchers.expire(connection, now, code=code)
        with self._engine.begin() as connection:
            claimed = store.requests.claim(connection, "use_voucher", request_id, digest, code, now)
            if claimed is not None:
                return first_response(claimed, digest, request_id, Voucher, lambda: _voucher(connection, code))
            found = store.vouchers.get(connection, code, lock=True)
            if found is None or found[1] != RedemptionState.COMPLETED:
                raise NotFound("VOUCHER_NOT_FOUND", "no such voucher")
            check_open(found[0], now)
            store.vouchers.set_state(
                connection, code, [VoucherState.ISSUED], VoucherState.USED, used_at=now, merchant_id=merchant_id
            )
            used = dataclasses.replace(found[0], state=VoucherState.USED, used_at=now)
            store.requests.keep_response(connection, "use_voucher", request_id, used)
        return used

    def cancel_voucher(self, request_id: str, code: str, reason: str) -> tuple[Voucher, int]:
        return self.redemptions.cancel_voucher(request_id, code, reason)

    # --- charity (rewards_svc/charity.py) -------------------------------------------------------------------------

    def list_projects(self) -> list[CharityProject]:
        return self.charity.list_projects()

    def donate(self, request_id: str, account_number: str, project_id: str, amount_points: int) -> Donation:
        return self.charity.donate(request_id, account_number, project_id, amount_points)

    # --- recommendations -----------------------------------------------------------------------------------------

    def recommend(self, account_number: str, region_code: str, max_results: int) -> tuple[int, list[Recommendation]]:
        require_account(account_number)
        region_code = region_code or self._region_code
        if not REGION_CODE_PATTERN.match(region_code):
            raise InvalidArgument("region_code", "a 6-digit GB/T 2260 region code")
        if not 0 <= max_results <= 50:
            raise InvalidArgument("max_results", "between 0 (default 5) and 50")
        try:
            available = self._ledger.available_points(account_number)
        except LedgerUnavailable:
            raise Unavailable("LEDGER_UNAVAILABLE", "the ledger did not answer; try again") from None
        except LedgerRefused as refused:
            raise mirror(refused) from None
        with self._engine.connect() as connection:
            rewards = store.rewards.list_page(connection)
        return available, recommend(rewards, available, region_code, self._clock(), max_results or 5)

    # --- recovery ------------------------------------------------------------------------------------------------

    def recover(self, min_age_s: float = 0) -> RecoveryReport:
        """Finishes what a crash or an unanswered ledger call left halfway; safe beside live requests."""
        now = self._clock()
        resolved = cancels = donations = unresolved = 0
        with self._engine.connect() as connection:
            pending = store.redemptions.ids_in_state(
                connection, RedemptionState.PENDING, now - timedelta(seconds=min_age_s), RECOVERY_BATCH
            )
            cancelling = store.vouchers.codes_in_state(connection, VoucherState.CANCELLING, RECOVERY_BATCH)
            pending_donations = store.charity.pending_donation_ids(connection, RECOVERY_BATCH)
        for redemption_id in pending:
            try:
                self.redemptions.resolve(redemption_id)
                resolved += 1
            except LedgerUnavailable:
                unresolved += 1
        for code in cancelling:
            try:
                self.redemptions.finish_cancel(code)
                cancels += 1
            except (Unavailable, FailedPrecondition, InvalidArgument, NotFound):
                unresolved += 1
        for donation_id in pending_donations:
            try:
                self.charity.finish_donation(donation_id)
                donations += 1
            except FailedPrecondition:
                donations += 1
            except (Unavailable, InvalidArgument, NotFound):
                unresolved += 1
        with self._engine.begin() as connection:
            expired = store.vouchers.expire(connection, now)
        report = RecoveryReport(resolved, cancels, donations, expired, unresolved)
        if report != RecoveryReport():
            log.info("recovery pass", extra=asdict(report))
        return report


def first_response(
    claimed: store.requests.Claimed, digest: str, request_id: str, kind: type[T], current: Callable[[], T | None]
) -> T:
    """What the first request with this id returned; a different body under the same id is refused.

    A request claimed before responses were kept (migration rewards_0002) gets the current state, as it did then.
    """
    if claimed.fingerprint != digest:
        raise idempotency_reused(request_id)
    if claimed.response:
        return store.requests.decode(claimed.response, kind)
    found = current()
    if found is None:
        raise NotFound("NOT_FOUND", f"request {request_id} left nothing to return")
    return found


def _voucher(connection: Connection, code: str) -> Voucher | None:
    found = store.vouchers.get(connection, code)
    return None if found is None else found[0]


class RecoveryLoop:
    """A daemon thread: one full recovery pass now (retried until the ledger answers), then one per interval for
    work older than min_age_s. `stop` ends it and waits for a pass in progress (the server's stop hook)."""

    def __init__(self, service: RewardsService, interval_s: float, min_age_s: float) -> None:
        self._service = service
        self._interval_s = interval_s
        self._min_age_s = min_age_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rewards-recovery", daemon=True)

    def start(self) -> RecoveryLoop:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                report = self._service.recover(0 if first else self._min_age_s)
                first = first and report.unresolved > 0
            except Exception:
                log.exception("recovery pass crashed")
            self._stop.wait(1.0 if first else self._interval_s)
