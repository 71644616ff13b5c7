"""Holds and the lots they reserve; releasing timed-out holds set-based."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from ledger_svc.domain.holds import Hold, HoldState
from ledger_svc.domain.lots import LotKey, Portion, UserAccount
from ledger_svc.store.accounts import update_lots_by_id
from ledger_svc.store.dialects import chunks
from ledger_svc.store.tables import every_lot, hold_lots, holds


def load_hold(conn: Connection, hold_id: str) -> Hold | None:
    """The hold with its reserved portions and their lots' keys, in one query."""
    rows = conn.execute(
        select(
            holds,
            hold_lots.c.lot_id.label("portion_lot_id"),
            hold_lots.c.amount_points.label("portion_points"),
            every_lot.c.account.label("lot_account"),
            every_lot.c.expires_at_us.label("lot_expires_at_us"),
            every_lot.c.earned_on.label("lot_earned_on"),
        )
        .select_from(
            holds.outerjoin(hold_lots, hold_lots.c.hold_id == holds.c.hold_id).outerjoin(
                every_lot, every_lot.c.lot_id == hold_lots.c.lot_id
            )
        )
        .where(holds.c.hold_id == hold_id)
        .order_by(hold_lots.c.position)
    ).all()
    if not rows:
        return None
    return hold_from_row(
        rows[0],
        [
            Portion(
                LotKey(portion.lot_account, portion.lot_expires_at_us, portion.lot_earned_on),
                portion.portion_points,
                portion.portion_lot_id,
            )
            for portion in rows
            if portion.portion_lot_id is not None
        ],
    )


def hold_from_row(row: Any, lots: list[Portion] | None = None) -> Hold:
    """A hold from a row with the holds table's columns; its lots come from other rows, so they are given apart."""
    return Hold(
        hold_id=row.hold_id,
        account=row.account,
        amount_points=row.amount_points,
        state=HoldState(row.state),
        expires_at_us=row.expires_at_us,
        code=row.code,
        fingerprint=row.fingerprint,
        created_at_us=row.created_at_us,
        reference=row.reference,
        metadata_json=row.metadata_json,
        committed_points=row.committed_points,
        credit_account=row.credit_account,
        lots=lots if lots is not None else [],
    )


def hold_account(conn: Connection, hold_id: str) -> str | None:
    """The held account (to lock it before reading the hold under the lock)."""
    return conn.execute(select(holds.c.account).where(holds.c.hold_id == hold_id)).scalar_one_or_none()


def existing_hold_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(sorted(set(ids))):
        found.update(conn.execute(select(holds.c.hold_id).where(holds.c.hold_id.in_(part))).scalars())
    return found


def insert_hold(conn: Connection, hold: Hold) -> None:
    conn.execute(
        insert(holds).values(
            hold_id=hold.hold_id,
            account=hold.account,
            amount_points=hold.amount_points,
            state=int(hold.state),
            expires_at_us=hold.expires_at_us,
            committed_points=0,
            credit_account="",
            code=hold.code,
            reference=hold.reference,
            metadata_json=hold.metadata_json,
            fingerprint=hold.fingerprint,
            created_at_us=hold.created_at_us,
        )
    )
    assert all(portion.lot_id is not None for portion in hold.lots)
    conn.execute(
        insert(hold_lots),
        [
            {
                "hold_id": hold.hold_id,
                "position": position,
                "lot_id": portion.lot_id,
                "amount_points": portion.amount_points,
            }
            for position, portion in enumerate(hold.lots)
        ],
    )


def resolve_hold(conn: Connection, hold: Hold, now_us: int) -> None:
    conn.execute(
        update(holds)
        .where(holds.c.hold_id == hold.hold_id)
        .values(
            state=int(hold.state),
            committed_points=hold.committed_points,
            credit_account=hold.credit_account,
            resolved_at_us=now_us,
        )
    )


def expired_hold_accounts(conn: Connection, now_us: int, limit: int) -> list[str]:
    """Accounts with pending holds past their timeout (the sweeper's work list)."""
    rows = conn.execute(
        select(holds.c.account)
        .where(holds.c.state == int(HoldState.PENDING), holds.c.expires_at_us <= now_us)
        .order_by(holds.c.expires_at_us)
        .limit(limit)
    ).scalars()
    return sorted(set(rows))


def release_expired_holds(
    conn: Connection, users: Mapping[str, UserAccount], accounts: Iterable[str], now_us: int
) -> int:
    """Releases timed-out pending holds of locked accounts: points back to their lots, held points down (in the
    in-memory accounts; the caller writes them). Returns how many holds were released."""
    # An account holding no points has no pending hold, timed out or not: no query needed.
    names = sorted({name for name in accounts if users[name].held_points > 0})
    if not names:
        return 0
    expired: list[Any] = []  # rows: hold_id, account, amount_points
    for part in chunks(names):
        expired.extend(
            conn.execute(
                select(holds.c.hold_id, holds.c.account, holds.c.amount_points).where(
                    holds.c.account.in_(part), holds.c.state == int(HoldState.PENDING), holds.c.expires_at_us <= now_us
                )
            )
        )
    if not expired:
        return 0
    per_lot: dict[int, int] = defaultdict(int)
    hold_ids = [row.hold_id for row in expired]
    for part in chunks(hold_ids):
        for row in conn.execute(
            select(hold_lots.c.lot_id, func.sum(hold_lots.c.amount_points).label("points"))
            .where(hold_lots.c.hold_id.in_(part))
            .group_by(hold_lots.c.lot_id)
        ):
            per_lot[row.lot_id] += int(row.points)
    update_lots_by_id(conn, per_lot)
    for row in expired:
        users[row.account].held_points -= row.amount_points
    for part in chunks(sorted(hold_ids)):
        conn.execute(
            update(holds).where(holds.c.hold_id.in_(part)).values(state=int(HoldState.EXPIRED), resolved_at_us=now_us)
        )
    return len(expired)


def hold_accounts(conn: Connection, hold_ids: Iterable[str]) -> dict[str, str]:
    """The held account of each hold that exists (to lock them before reading the holds under the locks)."""
    found: dict[str, str] = {}
    for part in chunks(sorted(set(hold_ids))):
        rows = conn.execute(select(holds.c.hold_id, holds.c.account).where(holds.c.hold_id.in_(part)))
        found.update((row.hold_id, row.account) for row in rows)
    return found


def insert_holds(conn: Connection, placed: list[Hold], now_us: int) -> None:
    """New holds with their portions, each in its state at the end of the transaction (a hold committed in the
    transaction that placed it is inserted committed)."""
    if not placed:
        return
    conn.execute(
        insert(holds),
        [
            {
                "hold_id": hold.hold_id,
                "account": hold.account,
                "amount_points": hold.amount_points,
                "state": int(hold.state),
                "expires_at_us": hold.expires_at_us,
                "committed_points": hold.committed_points,
                "credit_account": hold.credit_account,
                "code": hold.code,
                "reference": hold.reference,
                "metadata_json": hold.metadata_json,
                "fingerprint": hold.fingerprint,
                "created_at_us": hold.created_at_us,
                "resolved_at_us": None if hold.state is HoldState.PENDING else now_us,
            }
            for hold in placed
        ],
    )
    portions = [
        {
            "hold_id": hold.hold_id,
            "position": position,
            "lot_id": portion.lot_id,
            "amount_points": portion.amount_points,
        }
        for hold in placed
        for position, portion in enumerate(hold.lots)
    ]
    assert all(row["lot_id"] is not None for row in portions)
    if portions:
        conn.execute(insert(hold_lots), portions)


def resolve_holds(conn: Connection, resolved: list[Hold], now_us: int) -> None:
    """Stores the new state of holds resolved in this transaction."""
    if not resolved:
        return
    conn.execute(
        update(holds)
        .where(holds.c.hold_id == bindparam("id"))
        .values(
            state=bindparam("st"),
            committed_points=bindparam("cp"),
            credit_account=bindparam("ca"),
            resolved_at_us=now_us,
        ),
        [{"id": h.hold_id, "st": int(h.state), "cp": h.committed_points, "ca": h.credit_account} for h in resolved],
    )
