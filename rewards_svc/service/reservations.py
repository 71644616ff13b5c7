"""Redemptions reserved and completed in groups (docs/adr/0304): the redemptions of one reward that arrive together
are checked and written in one transaction, and the ones that finish together are marked COMPLETED in one.

Each request keeps its own outcome: its own stored redemption, its own refusal (stored FAILED, as alone), or the
redemption stored first under its request id. The checks run in arrival order against the stock and per-account
usage the group's earlier members left, so no reward is oversold and no limit passed. Under low load a group is one
request; under load groups grow by themselves (the forward groups of service/redemption.py, docs/adr/0306), and a
transaction, a commit and the reward row's lock are shared by the whole group instead of taken once per redemption.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from rewards_svc import store
from rewards_svc.domain.catalog import Reward, has_counted_stock, reward_not_found
from rewards_svc.domain.limits import NO_USAGE, Usage, is_limited, limit_units, period_starts
from rewards_svc.domain.redemption import (
    RedeemRequest,
    Redemption,
    check_redeemable,
    new_redemption,
    vouchers_for,
)
from rewards_svc.domain.vouchers import Voucher
from service_kit.clock import Clock
from service_kit.coalescing import Coalescer
from service_kit.errors import DomainError, FailedPrecondition, Unavailable

# At most this many redemptions share one transaction: bounds its locks and the statement sizes.
MAX_GROUP = 128
# A request id taken by a concurrent transaction between the group's look-up and its insert rolls the group back to
# read it as taken; a few rounds always settle it (the other transaction has committed by then).
_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Reserved:
    """A new PENDING redemption and the reward it was checked against (its terms and voucher lifetime)."""

    redemption: Redemption
    reward: Reward
    # Written with it when its Hold commits at once; none on the two-step path (issued between Hold and commit).
    vouchers: tuple[Voucher, ...] = ()


Outcome = Reserved | Redemption | DomainError


@dataclass
class _Planned:
    position: int
    redemption: Redemption
    units: int
    refusal: FailedPrecondition | None


class Reservations:
    def __init__(self, engine: Engine, clock: Clock, hold_timeout_s: int, hold_commit_account: str) -> None:
        self._engine = engine
        self._clock = clock
        self._hold_timeout_s = hold_timeout_s
        self._hold_commit_account = hold_commit_account
        # Items are the redemption ids one caller completes together (a group's, or one): the caller waits once.
        self._completing: Coalescer[tuple[str, ...], tuple[bool, ...]] = Coalescer(
            self._complete_group, max_size=MAX_GROUP
        )

    def complete(self, redemption_ids: Sequence[str]) -> tuple[bool, ...]:
        """PENDING → COMPLETED, in one transaction with other redemptions finishing at the same time; False for each
        that another worker moved first."""
        return self._completing.submit("", tuple(redemption_ids), len(redemption_ids))

    def _complete_group(self, items: Sequence[tuple[str, ...]]) -> list[tuple[bool, ...]]:
        with self._engine.begin() as connection:
            moved = store.redemptions.complete_many(connection, [rid for ids in items for rid in ids], self._clock())
        return [tuple(redemption_id in moved for redemption_id in ids) for ids in items]

    def reserve_group(self, requests: Sequence[RedeemRequest]) -> list[Outcome]:
        """The checks, the PENDING redemptions, the stock they take (and their vouchers when their Holds commit at
        once) for these concurrent requests for one reward, in one transaction: per request, in their order, its new
        redemption, the one stored first under its request id (a retry: nothing written), or its refusal (stored
        FAILED)."""
        with self._engine.connect() as connection:
            for _ in range(_MAX_ATTEMPTS):
                with connection.begin() as transaction:
                    outcomes = self._try_group(connection, requests)
                    if outcomes is not None:
                        return outcomes
                    transaction.rollback()
        raise Unavailable("REDEMPTION_CONTENDED", "the request id is being redeemed concurrently; retry with it")

    def _try_group(self, connection: Connection, requests: Sequence[RedeemRequest]) -> list[Outcome] | None:
        """The group's outcomes in request order; None when a request id was taken meanwhile (roll back, try again)."""
        now = self._clock()
        # A retry finds its redemption before the reward is locked: retries never queue behind new redemptions.
        taken = store.redemptions.taken_request_ids(connection, [request.request_id for request in requests])
        reward = _reward_to_check(connection, requests[0].reward_id)
        outcomes: list[Outcome | None] = [None] * len(requests)
        planned: list[_Planned] = []
        seen: set[str] = set()
        stock_left = reward.stock if reward is not None else 0
        group_units: dict[str, int] = {}  # limit units this group already took, per account
        for position, request in enumerate(requests):
            if request.request_id in taken or request.request_id in seen:
                continue  # answered below with the redemption stored first under its id
            if reward is None:
                outcomes[position] = reward_not_found(request.reward_id)
                continue
            seen.add(request.request_id)
            units = limit_units(reward, request.quantity)
            checked = dataclasses.replace(reward, stock=stock_left) if has_counted_stock(reward) else reward
            refusal = _refusal(connection, request, checked, now, group_units.get(request.account_number, 0))
            redemption = new_redemption(
                uuid.uuid4().hex,
                request,
                reward,
                now,
                refusal.reason if refusal else "",
                self._hold_timeout_s,
                "" if refusal else self._hold_commit_account,
            )
            if refusal is None:
                stock_left -= request.quantity
                group_units[request.account_number] = group_units.get(request.account_number, 0) + units
            planned.append(_Planned(position, redemption, units, refusal))
        if planned:
            written = store.redemptions.insert_many(connection, [(item.redemption, item.units) for item in planned])
            if len(written) < len(planned):
                return None
        assert reward is not None or not planned
        accepted = [item for item in planned if item.refusal is None]
        if reward is not None and accepted and has_counted_stock(reward):
            taken_stock = sum(item.redemption.quantity for item in accepted)
            store.rewards.change_stock(connection, reward.reward_id, -taken_stock)
        vouchers: dict[int, tuple[Voucher, ...]] = {}
        if reward is not None and self._hold_commit_account:
            # Written now, seen only once the redemption completes: the one ledger call then takes the points.
            vouchers = {item.position: vouchers_for(item.redemption, reward, now) for item in accepted}
            store.vouchers.insert_new(connection, [voucher for items in vouchers.values() for voucher in items])
        for item in planned:
            if item.refusal is not None:
                outcomes[item.position] = item.refusal
            else:
                assert reward is not None
                outcomes[item.position] = Reserved(item.redemption, reward, vouchers.get(item.position, ()))
        for position, request in enumerate(requests):
            if outcomes[position] is None:
                stored = store.redemptions.get(connection, request_id=request.request_id)
                assert stored is not None  # taken before, or written by this group
                outcomes[position] = stored
        return [outcome for outcome in outcomes if outcome is not None]


def _reward_to_check(connection: Connection, reward_id: str) -> Reward | None:
    reward = store.rewards.get(connection, reward_id)
    if reward is not None and (has_counted_stock(reward) or is_limited(reward)):
        # Counted stock and per-account limits need the groups of this reward one at a time.
        reward = store.rewards.get(connection, reward_id, lock=True)
    return reward


def _refusal(
    connection: Connection, request: RedeemRequest, reward: Reward, now: datetime, group_units: int
) -> FailedPrecondition | None:
    """Why the reward cannot be redeemed now, if it cannot; usage is counted only where limits apply, with the units
    earlier members of the group took for the same account (written in this transaction, all of them today)."""
    usage = NO_USAGE
    if is_limited(reward):
        day_start, month_start = period_starts(now)
        stored = store.redemptions.usage(connection, request.account_number, reward.reward_id, day_start, month_start)
        usage = Usage(
            today=stored.today + group_units,
            this_month=stored.this_month + group_units,
            lifetime=stored.lifetime + group_units,
        )
    try:
        check_redeemable(reward, request.region_code, request.quantity, usage, now)
    except FailedPrecondition as refusal:
        return refusal
    return None
