"""The move_lots job (ADR 0137): recent lots of closed days go to the per-account lots, in batches of accounts.

A day is closed once the day after it has ended (China time): the day before yesterday and older. Each batch is one
transaction over the next accounts in account order; a killed run loses its open batch whole, and a rerun finds what
is left, so nothing is copied twice and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection

from ledger_svc.service.context import LedgerContext
from ledger_svc.store import lot_mover as mover_store

# Accounts per batch: each batch holds their row locks for its transaction (tens of ms at this size, ADR 0137).
BATCH_ACCOUNTS = 1000


@dataclass(frozen=True)
class MoveOutcome:
    lots_moved: int
    accounts: int
    done: bool
    resume_after: str  # the last account of the last batch; "" once done


def closed_through(today: date) -> date:
    """The last closed earning day on `today`: credits of yesterday may still come in, and today's do."""
    return today - timedelta(days=2)


def move_lots(
    ctx: LedgerContext,
    through: date,
    batch_accounts: int = BATCH_ACCOUNTS,
    max_batches: int = 0,
    after: str = "",
    on_batch: Callable[[Connection, int, int], None] | None = None,
) -> MoveOutcome:
    """Moves every recent lot earned by `through`, account by account after `after`, in at most `max_batches`
    batches (0: no limit). `on_batch(conn, lots, accounts)` counts a batch in its own transaction."""
    moved = accounts = batches = 0
    while not max_batches or batches < max_batches:

        def batch(conn: Connection, after: str = after) -> tuple[list[str], int]:
            names = mover_store.accounts_to_move(conn, through, after, batch_accounts)
            if not names:
                return names, 0
            count = mover_store.move_accounts(conn, names, through)
            if on_batch is not None:
                on_batch(conn, count, len(names))
            return names, count

        names, count = ctx.transaction(batch)
        if not names:
            return MoveOutcome(moved, accounts, done=True, resume_after="")
        moved, accounts, batches, after = moved + count, accounts + len(names), batches + 1, names[-1]
    return MoveOutcome(moved, accounts, done=False, resume_after=after)
