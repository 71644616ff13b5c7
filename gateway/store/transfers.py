"""Cross-region transfers in xr_transfers: recorded once, then moved step by step by compare-and-set.

The insert and the compare-and-set updates every transfer makes are built once (per set of columns written) and run
with the values as parameters: building a statement per write was a sixth of the gateway's CPU per transfer. On
PostgreSQL many rows at once (a batch's insert, a group's compare-and-sets) go as one statement of fixed text with the
rows as one JSON parameter, typed as the columns (ADR 0625, addendum).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Row,
    String,
    TextClause,
    Update,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from gateway.domain.transfers import Decision, HeldLot, State, Transfer, TransferRequest
from gateway.store.tables import transfers
from service_kit.db import naive_utc


def lots_json(lots: Sequence[HeldLot]) -> str:
    return json.dumps(
        [
            {
                "lot_id": lot.lot_id,
                "earned_on": lot.earned_on,
                "expires_at": lot.expires_at.isoformat(),
                "amount_points": lot.amount_points,
            }
            for lot in lots
        ]
    )


def lots_from_json(raw: str | None) -> list[HeldLot]:
    return [
        HeldLot(
            lot_id=item["lot_id"],
            earned_on=item["earned_on"],
            expires_at=datetime.fromisoformat(item["expires_at"]),
            amount_points=item["amount_points"],
        )
        for item in json.loads(raw or "[]")
    ]


def _transfer(row: Row[Any]) -> Transfer:
    return Transfer(
        request=TransferRequest(
            transfer_id=row.transfer_id,
            from_account=row.from_account,
            to_account=row.to_account,
            amount_points=row.amount_points,
        ),
        caller_id=row.caller_id,
        state=State(row.state),
        decision=Decision(row.decision),
        created_at=row.created_at,
        expires_at=row.expires_at,
        hold_timeout_ms=row.hold_timeout_ms,
        failure_reason=row.failure_reason,
        finished_at=row.finished_at,
        hold_expires_at=row.hold_expires_at,
        held_lots=lots_from_json(row.held_lots),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        carry_lots=lots_from_json(row.carry_lots),
        authorized_by=row.authorized_by,
    )


def insert_transfer(
    conn: Connection, transfer: Transfer, lease_until: datetime, lease_owner: str | None = None
) -> None:
    """Raises IntegrityError when the id exists (the caller re-reads and compares fingerprints)."""
    conn.execute(insert(transfers).values(**_row(transfer, lease_until, lease_owner)))


def insert_new_transfer(
    conn: Connection, transfer: Transfer, lease_until: datetime, lease_owner: str | None = None
) -> bool:
    """Inserts the transfer unless its id exists (False then): a twin's row does not abort the transaction, so the
    insert can share one with other transfers' writes."""
    row = _row(transfer, lease_until, lease_owner)
    return conn.execute(_insert_new(conn.dialect.name), row).first() is not None


def insert_new_transfers(
    conn: Connection, new: Sequence[Transfer], lease_until: datetime, lease_owner: str | None = None
) -> set[str]:
    """Inserts many transfers, each unless its id exists; returns the ids inserted now: on PostgreSQL one statement
    with the rows as JSON, on SQLite the insert built for one transfer run with every row's values (SQLAlchemy's
    multi-row "insertmanyvalues"). Rows go in transfer id order, so two batches sharing ids never wait on each other
    in a cycle."""
    if not new:
        return set()
    rows = [_row(transfer, lease_until, lease_owner) for transfer in sorted(new, key=lambda t: t.transfer_id)]
    if conn.dialect.name == "postgresql":
        # One statement of fixed text whatever the batch's size, the rows one JSON parameter: psycopg prepares it
        # once, where a multi-row VALUES is a new, long statement to parse each time.
        found = conn.execute(_insert_new_json(tuple(rows[0])), {"rows": json.dumps(rows, default=_json_moment)})
        return {row.transfer_id for row in found}
    return {row.transfer_id for row in conn.execute(_insert_new(conn.dialect.name), rows)}


def finish_many(
    conn: Connection, transfer_ids: Sequence[str], expected: State, state: State, finished_at: datetime
) -> set[str]:
    """Settles many transfers found in `expected` (a compare-and-set for each row, in one statement), ending their
    leases, with no failure reason; returns the ids it moved (the others had been moved by another driver)."""
    if not transfer_ids:
        return set()
    values = {"expected": expected.value, "state": state.value, "finished_at": finished_at}
    if conn.dialect.name == "postgresql":
        # `= ANY(array)`: the same plan as IN (…), but one statement text whatever the count, prepared once.
        found = conn.execute(_finish_any(), {"ids": sorted(transfer_ids), **values})
    else:
        found = conn.execute(_finish(transfers.c.transfer_id.in_(sorted(transfer_ids))), values)
    return {row.transfer_id for row in found}


@functools.cache
def _finish_any() -> Update:
    ids = bindparam("ids", type_=postgresql.ARRAY(String()))
    return _finish(transfers.c.transfer_id == func.any(ids))


def _finish(chosen: ColumnElement[bool]) -> Update:
    """UPDATE … SET the settled state, no failure reason, lease ended WHERE `chosen` AND state = `expected`."""
    return (
        update(transfers)
        .where(chosen, transfers.c.state == bindparam("expected"))
        .values(
            state=bindparam("state"),
            failure_reason="",
            finished_at=bindparam("finished_at"),
            attempts=0,
            next_attempt_at=None,
            lease_until=None,
            lease_owner=None,
        )
        .returning(transfers.c.transfer_id)
    )


@functools.cache
def _insert_new(dialect_name: str) -> Insert:
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: psycopg answers -1 for an INSERT … ON CONFLICT here.
    return dialect_insert(transfers).on_conflict_do_nothing().returning(transfers.c.transfer_id)


@functools.cache
def _insert_new_json(row_columns: tuple[str, ...]) -> TextClause:
    """PostgreSQL: INSERT … SELECT FROM json_populate_recordset(the table's own row type, :rows) ON CONFLICT DO
    NOTHING RETURNING transfer_id: every value typed as its column, rows in transfer id order. `row_columns`: the
    columns a new transfer's row sets (_row's keys; the others take their defaults)."""
    columns = ", ".join(row_columns)
    return text(
        f"INSERT INTO xr_transfers ({columns}) SELECT {columns} "
        "FROM json_populate_recordset(NULL::xr_transfers, CAST(:rows AS json)) ORDER BY transfer_id "
        "ON CONFLICT DO NOTHING RETURNING transfer_id"
    )


@functools.cache
def _compare_and_set(columns: tuple[str, ...], on_decision: bool) -> Update:
    """UPDATE … SET `columns` WHERE the transfer is in the expected state (and decision): parameters `cas_id`,
    `cas_state`, `cas_decision` and `set_<column>`."""
    where = [transfers.c.transfer_id == bindparam("cas_id"), transfers.c.state == bindparam("cas_state")]
    if on_decision:
        where.append(transfers.c.decision == bindparam("cas_decision"))
    return update(transfers).where(*where).values({column: bindparam(f"set_{column}") for column in columns})


class CompareAndSet(NamedTuple):
    """One compare-and-set: the statement built once for its columns, and this write's values."""

    statement: Update
    parameters: dict[str, Any]


def _cas(transfer_id: str, state: State, values: dict[str, Any], decision: Decision | None = None) -> CompareAndSet:
    statement = _compare_and_set(tuple(values), decision is not None)
    parameters = {f"set_{column}": value for column, value in values.items()}
    parameters.update(cas_id=transfer_id, cas_state=state.value)
    if decision is not None:
        parameters["cas_decision"] = decision.value
    return CompareAndSet(statement, parameters)


def run(conn: Connection, write: CompareAndSet) -> bool:
    """The compare-and-set: True when it moved the row."""
    return conn.execute(write.statement, write.parameters).rowcount == 1


def run_together(conn: Connection, writes: Sequence[CompareAndSet]) -> list[bool]:
    """Many compare-and-sets in one transaction, in the given order. On PostgreSQL those of one statement on different
    transfers go as one UPDATE of them all (_run_at_once), which answers which rows moved; a group naming a transfer
    twice goes as one executemany (a pipeline) inside a savepoint, and when not every row moved the savepoint is
    rolled back and they are run one by one to tell which did."""
    moved = [False] * len(writes)
    groups: dict[int, list[int]] = {}
    for index, write in enumerate(writes):
        groups.setdefault(id(write.statement), []).append(index)
    for indexes in groups.values():
        statement = writes[indexes[0]].statement
        if len(indexes) > 1 and conn.dialect.name == "postgresql":
            if len({writes[i].parameters["cas_id"] for i in indexes}) == len(indexes):
                moved_ids = _run_at_once(conn, [writes[i].parameters for i in indexes])
                for index in indexes:
                    moved[index] = writes[index].parameters["cas_id"] in moved_ids
                continue
            savepoint = conn.begin_nested()
            if conn.execute(statement, [writes[i].parameters for i in indexes]).rowcount == len(indexes):
                savepoint.commit()
                for index in indexes:
                    moved[index] = True
                continue
            savepoint.rollback()
        for index in indexes:
            moved[index] = run(conn, writes[index])
    return moved


def _run_at_once(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """PostgreSQL: compare-and-sets of one statement, on different transfers, as one UPDATE … FROM the rows' values
    (one JSON parameter); the ids of the rows it moved. The rows are locked first in transfer id order, as one by
    one they would be, so two groups sharing rows never wait on each other in a cycle."""
    ids = sorted(row["cas_id"] for row in rows)
    conn.execute(_lock_in_order(), {"ids": ids})
    found = conn.execute(
        _compare_and_set_json(tuple(rows[0]), conn.dialect), {"rows": json.dumps(rows, default=_json_moment)}
    )
    return {row.transfer_id for row in found}


def _json_moment(value: object) -> str:
    if isinstance(value, datetime):
        return naive_utc(value).isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")


@functools.cache
def _lock_in_order() -> TextClause:
    return text("SELECT transfer_id FROM xr_transfers WHERE transfer_id = ANY(:ids) ORDER BY transfer_id FOR UPDATE")


@functools.cache
def _compare_and_set_json(parameters: tuple[str, ...], dialect: Dialect) -> TextClause:
    """The compare-and-set of _compare_and_set for many rows: UPDATE … SET each `set_<column>` FROM
    json_to_recordset(:rows) typed as the columns, WHERE id, state (and decision) are the row's `cas_*`."""
    compile_type = dialect.type_compiler_instance.process
    compared = {"cas_id": "transfer_id", "cas_state": "state", "cas_decision": "decision"}
    column_of = {name: compared.get(name) or name.removeprefix("set_") for name in parameters}
    typed = ", ".join(f"{name} {compile_type(transfers.c[column_of[name]].type)}" for name in parameters)
    sets = ", ".join(f"{column_of[name]} = v.{name}" for name in parameters if name.startswith("set_"))
    where = " AND ".join(f"xr_transfers.{column_of[name]} = v.{name}" for name in parameters if name in compared)
    return text(
        f"UPDATE xr_transfers SET {sets} FROM json_to_recordset(CAST(:rows AS json)) AS v({typed}) WHERE {where} "
        "RETURNING xr_transfers.transfer_id"
    )


def _row(transfer: Transfer, lease_until: datetime, lease_owner: str | None) -> dict[str, Any]:
    return dict(
        transfer_id=transfer.transfer_id,
        fingerprint=transfer.request.fingerprint(),
        caller_id=transfer.caller_id,
        from_account=transfer.request.from_account,
        to_account=transfer.request.to_account,
        amount_points=transfer.request.amount_points,
        state=transfer.state.value,
        decision=transfer.decision.value,
        failure_reason=transfer.failure_reason,
        created_at=transfer.created_at,
        expires_at=transfer.expires_at,
        hold_timeout_ms=transfer.hold_timeout_ms,
        held_lots="[]",
        attempts=0,
        next_attempt_at=transfer.next_attempt_at,
        lease_until=lease_until,
        lease_owner=lease_owner,
        carry_lots=lots_json(transfer.carry_lots),
        authorized_by=transfer.authorized_by,
    )


def get_transfer(conn: Connection, transfer_id: str) -> Transfer | None:
    row = conn.execute(select(transfers).where(transfers.c.transfer_id == transfer_id)).first()
    return None if row is None else _transfer(row)


def advance(conn: Connection, transfer_id: str, expected: State, state: State, **changes: Any) -> bool:
    """Moves a transfer from `expected` to `state` (compare-and-set, see advance_cas); False if someone else moved it
    first."""
    return run(conn, advance_cas(transfer_id, expected, state, **changes))


def advance_cas(
    transfer_id: str,
    expected: State,
    state: State,
    *,
    failure_reason: str | None = None,
    finished_at: datetime | None = None,
    hold_expires_at: datetime | None = None,
    held_lots: Sequence[HeldLot] | None = None,
    decision: Decision | None = None,
    lease_until: datetime | None = None,
    lease_owner: str | None = None,
    release_lease: bool = False,
) -> CompareAndSet:
    """The write moving a transfer from `expected` to `state` (compare-and-set). With
    `decision` the decision is recorded in the same write; `lease_until` renews the driver's lease for the next step
    (held by `lease_owner`), `release_lease` ends it (the transfer settled)."""
    values: dict[str, Any] = {"state": state.value, "attempts": 0, "next_attempt_at": None}
    if decision is not None:
        values["decision"] = decision.value
    if lease_until is not None or release_lease:
        values["lease_until"] = lease_until
        values["lease_owner"] = lease_owner
    if failure_reason is not None:
        values["failure_reason"] = failure_reason
    if finished_at is not None:
        values["finished_at"] = finished_at
    if hold_expires_at is not None:
        values["hold_expires_at"] = hold_expires_at
    if held_lots is not None:
        values["held_lots"] = lots_json(held_lots)
    return _cas(transfer_id, expected, values)


def decide(
    conn: Connection, transfer_id: str, state: State, expected: Decision, decision: Decision, *args: Any, **kw: Any
) -> bool:
    """Records a durable decision (compare-and-set, see decide_cas); False if someone else moved the transfer first."""
    return run(conn, decide_cas(transfer_id, state, expected, decision, *args, **kw))


def decide_cas(
    transfer_id: str,
    state: State,
    expected: Decision,
    decision: Decision,
    failure_reason: str = "",
    lease_until: datetime | None = None,
    lease_owner: str | None = None,
) -> CompareAndSet:
    """The write recording a durable decision (compare-and-set on state and the previous decision); `lease_until`
    renews the driver's lease for the next step (held by `lease_owner`)."""
    values: dict[str, Any] = {"decision": decision.value, "failure_reason": failure_reason}
    if lease_until is not None:
        values["lease_until"] = lease_until
        values["lease_owner"] = lease_owner
    return _cas(transfer_id, state, values, expected)


def list_transfers(
    conn: Connection, account_number: str, state: State | None, page_size: int, after_id: str
) -> list[Transfer]:
    """A page in transfer id order after `after_id`: all transfers, or those from or to one account, in one state."""
    conditions = [transfers.c.transfer_id > after_id]
    if account_number:
        conditions.append(or_(transfers.c.from_account == account_number, transfers.c.to_account == account_number))
    if state is not None:
        conditions.append(transfers.c.state == state.value)
    query = select(transfers).where(and_(*conditions)).order_by(transfers.c.transfer_id).limit(page_size)
    return [_transfer(row) for row in conn.execute(query)]


def claim_due(
    conn: Connection,
    finished_states: Sequence[str],
    now: datetime,
    lease_until: datetime,
    limit: int,
    lease_owner: str | None = None,
) -> list[Transfer]:
    """Leases up to `limit` unfinished transfers due for another attempt and leased by no one, oldest first, in one
    statement, and returns them as claimed (the recovery loop's batch)."""
    free = or_(transfers.c.lease_until.is_(None), transfers.c.lease_until < now)
    due = (
        select(transfers.c.transfer_id)
        .where(
            transfers.c.state.not_in(list(finished_states)),
            or_(transfers.c.next_attempt_at.is_(None), transfers.c.next_attempt_at <= now),
            free,
        )
        .order_by(transfers.c.created_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":  # two gateways' loops take different rows instead of waiting on each other
        due = due.with_for_update(skip_locked=True)
    claimed = conn.execute(
        update(transfers)
        .where(transfers.c.transfer_id.in_(due.scalar_subquery()), free)
        .values(lease_until=lease_until, lease_owner=lease_owner)
        .returning(*transfers.c)
    )
    return sorted((_transfer(row) for row in claimed), key=lambda t: t.created_at)
