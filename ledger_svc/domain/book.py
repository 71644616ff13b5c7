"""The working set of one ledger transaction: locked user accounts, their lots, system-account deltas.

Every change is recorded as a delta (for set-based writes) and with an undo step, so a failed linked chain
rolls back in memory before anything reaches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ledger_svc.domain.lots import LotKey, LotState, Portion, UserAccount
from ledger_svc.domain.refusal import Refusal


@dataclass
class LotDelta:
    remaining_points: int = 0
    credited_points: int = 0


@dataclass
class Book:
    now_us: int
    accounts: dict[str, UserAccount]
    lot_deltas: dict[LotKey, LotDelta] = field(default_factory=dict)
    system_deltas: dict[str, int] = field(default_factory=dict)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    # --- checkpoints for linked chains -------------------------------------------------------------------
    def mark(self) -> int:
        return len(self._undo)

    def rollback(self, mark: int) -> None:
        while len(self._undo) > mark:
            self._undo.pop()()

    # --- primitive moves ---------------------------------------------------------------------------------
    def user(self, account: str) -> UserAccount:
        return self.accounts[account]

    def _lot_change(self, key: LotKey, remaining_delta: int, credited_delta: int, lot_id: int | None = None) -> None:
        account = self.accounts[key.account]
        lot = account.lots.get(key)
        if lot is None:
            # A lot this transaction did not load (empty, expired or never read): only its delta matters.
            lot = account.lots[key] = LotState(key, 0, lot_id)
        lot.remaining_points += remaining_delta
        assert lot.remaining_points >= 0 or remaining_delta >= 0, f"lot {key} would go negative"
        delta = self.lot_deltas.setdefault(key, LotDelta())
        delta.remaining_points += remaining_delta
        delta.credited_points += credited_delta

        def undo() -> None:
            lot.remaining_points -= remaining_delta
            delta.remaining_points -= remaining_delta
            delta.credited_points -= credited_delta

        self._undo.append(undo)

    def _balance_change(self, account: str, balance_delta: int, held_delta: int) -> None:
        state = self.accounts[account]
        state.balance_points += balance_delta
        state.held_points += held_delta

        def undo() -> None:
            state.balance_points -= balance_delta
            state.held_points -= held_delta

        self._undo.append(undo)

    def system_change(self, account: str, delta_points: int) -> None:
        self.system_deltas[account] = self.system_deltas.get(account, 0) + delta_points

        def undo() -> None:
            self.system_deltas[account] -= delta_points

        self._undo.append(undo)

    # --- moves the use cases are made of ------------------------------------------------------------------
    def take_lots(self, account: str, amount_points: int, *, held: bool = False) -> list[Portion]:
        """Takes points FIFO out of the lots: a posted debit (balance falls) or a hold (held rises)."""
        portions = self.accounts[account].plan_fifo(amount_points, self.now_us)
        for portion in portions:
            self._lot_change(portion.key, -portion.amount_points, 0)
        if held:
            self._balance_change(account, 0, amount_points)
        else:
            self._balance_change(account, -amount_points, 0)
        return portions

    def put_lots(self, account: str, portions: list[Portion], *, fresh: bool) -> list[Portion]:
        """Credits points into lots (the balance rises). `fresh` points count as credited to the lot and must not
        land in an expired lot; a refund is not fresh: it restores points to their original, maybe expired, lots."""
        placed: list[Portion] = []
        for portion in portions:
            key = LotKey(account, portion.key.expires_at_us, portion.key.earned_on)
            if key.expires_at_us <= self.now_us and fresh:
                raise Refusal("LOT_ALREADY_EXPIRED", f"points earned on {key.earned_on} have already expired")
            lot_id = portion.lot_id if key == portion.key else None
            self._lot_change(key, portion.amount_points, portion.amount_points if fresh else 0, lot_id)
            lot = self.accounts[account].lots[key]
            placed.append(Portion(key, portion.amount_points, lot.lot_id))
        total = sum(portion.amount_points for portion in portions)
        self._balance_change(account, total, 0)
        return placed

    def release_held(self, account: str, portions: list[Portion], held_points: int) -> None:
        """Returns reserved portions to their lots (release, expiry of a hold, the rest of a partial commit)."""
        for portion in portions:
            self._lot_change(portion.key, portion.amount_points, 0, portion.lot_id)
        self._balance_change(account, 0, -held_points)

    def spend_held(self, account: str, amount_points: int) -> None:
        """A commit: the committed points leave the balance; they already left the lots at hold time."""
        self._balance_change(account, -amount_points, 0)
