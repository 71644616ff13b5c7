"""The reminder outbox and the residents' reminder preference (portable SQL: PostgreSQL and SQLite)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from identity_svc.domain.reminders import DeliveryState, Horizon, ReminderKind
from identity_svc.store.tables import reminder_outbox, reminder_preferences


def _insert(conn: Connection, table: Any) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def opted_out(conn: Connection, account_numbers: Iterable[str]) -> set[str]:
    wanted = sorted(set(account_numbers))
    query = select(reminder_preferences.c.account_number).where(
        reminder_preferences.c.account_number.in_(wanted), reminder_preferences.c.reminders_off.is_(True)
    )
    return {row.account_number for row in conn.execute(query)}


def set_preference(conn: Connection, account_number: str, reminders_off: bool, now_us: int) -> None:
    statement = _insert(conn, reminder_preferences).values(
        account_number=account_number, reminders_off=reminders_off, updated_at_us=now_us
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["account_number"], set_={"reminders_off": reminders_off, "updated_at_us": now_us}
        )
    )


def queue(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Inserts the rows whose notice key is new; returns the keys inserted (the others were queued before)."""
    inserted: set[str] = set()
    for row in rows:
        # RETURNING rather than rowcount, which psycopg reports as -1 for ON CONFLICT DO NOTHING here.
        statement = _insert(conn, reminder_outbox).values(**row).on_conflict_do_nothing()
        inserted.update(conn.execute(statement.returning(reminder_outbox.c.notice_key)).scalars())
    return inserted


def due(conn: Connection, now_us: int, limit: int) -> Sequence[Row[Any]]:
    query = (
        select(reminder_outbox)
        .where(reminder_outbox.c.state == DeliveryState.PENDING.value, reminder_outbox.c.next_attempt_at_us <= now_us)
        .order_by(reminder_outbox.c.next_attempt_at_us, reminder_outbox.c.notice_key)
        .limit(limit)
    )
    return conn.execute(query).all()


def claim(conn: Connection, row: Row[Any], until_us: int) -> bool:
    """Takes the row for one attempt until `until_us`, if no other replica took it since it was read."""
    result = conn.execute(
        update(reminder_outbox)
        .where(
            reminder_outbox.c.notice_key == row.notice_key,
            reminder_outbox.c.state == DeliveryState.PENDING.value,
            reminder_outbox.c.next_attempt_at_us == row.next_attempt_at_us,
        )
        .values(next_attempt_at_us=until_us)
    )
    return result.rowcount == 1


def record_attempt(conn: Connection, notice_key: str, **values: Any) -> None:
    conn.execute(update(reminder_outbox).where(reminder_outbox.c.notice_key == notice_key).values(**values))


def one(conn: Connection, notice_key: str) -> Row[Any] | None:
    return conn.execute(select(reminder_outbox).where(reminder_outbox.c.notice_key == notice_key)).first()


def page(conn: Connection, state: DeliveryState, after: tuple[int, str] | None, limit: int) -> Sequence[Row[Any]]:
    """Oldest first, after the (queued_at_us, notice_key) of the previous page's last row."""
    query = select(reminder_outbox).where(reminder_outbox.c.state == state.value)
    if after is not None:
        queued, key = after
        query = query.where(
            (reminder_outbox.c.queued_at_us > queued)
            | ((reminder_outbox.c.queued_at_us == queued) & (reminder_outbox.c.notice_key > key))
        )
    query = query.order_by(reminder_outbox.c.queued_at_us, reminder_outbox.c.notice_key).limit(limit)
    return conn.execute(query).all()


def prune(conn: Connection, finished_before_us: int, horizon: Horizon, limit: int) -> int:
    """Deletes up to `limit` notices delivered (or skipped) before `finished_before_us` whose horizon has passed;
    returns how many. PENDING and DEAD notices are never touched."""
    outbox = reminder_outbox.c
    finished = or_(
        and_(outbox.state == DeliveryState.DELIVERED.value, outbox.delivered_at_us < finished_before_us),
        and_(outbox.state == DeliveryState.SKIPPED.value, outbox.queued_at_us < finished_before_us),
    )
    moot = or_(
        and_(outbox.kind == int(ReminderKind.EXPIRING_SOON), outbox.expires_on < horizon.today),
        and_(outbox.kind == int(ReminderKind.MONTHLY_DIGEST), outbox.period < horizon.previous_month),
    )
    # Delivered before the cutoff means queued before it: the (state, queued_at_us) index narrows the scan.
    keys = (
        select(outbox.notice_key)
        .where(outbox.state.in_([DeliveryState.DELIVERED.value, DeliveryState.SKIPPED.value]))
        .where(outbox.queued_at_us < finished_before_us, finished, moot)
        .limit(limit)
    )
    found = list(conn.execute(keys).scalars())
    if not found:
        return 0
    return int(conn.execute(delete(reminder_outbox).where(outbox.notice_key.in_(found))).rowcount)
