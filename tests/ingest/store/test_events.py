"""Accepted events in the store: the COPY text is the plainly escaped rows, and each PostgreSQL statement writes and
finds what its portable twin does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine

from ingest_svc.domain.event_rows import CREDITED, NO_CREDIT, EventRow
from ingest_svc.store import credit_batches, events, pg
from ingest_svc.store.credit_batches import CreditBatch
from service_kit.pg_copy import COPY_ESCAPES
from tests.ingest.examples import NOW, rows_and_plain_rows

COLUMNS = list(EventRow._fields)


def _copied(rows: list[EventRow], monkeypatch: pytest.MonkeyPatch) -> str:
    written: list[str] = []

    class _Copy:
        def write(self, data: str) -> None:
            written.append(data)

    @contextlib.contextmanager
    def fake_copy_into(conn: object, statement: str) -> Iterator[_Copy]:
        assert statement == pg._COPY_EVENTS
        yield _Copy()

    monkeypatch.setattr(pg, "copy_into", fake_copy_into)
    pg.copy_events(None, rows)  # type: ignore[arg-type]
    return "".join(written)


def _plain_copy_text(rows: list[dict[str, Any]]) -> str:
    """COPY's text format, every free-text value escaped (a no-op where it holds no special character)."""
    free = ("partner_id", "event_id", "batch_id", "tier", "evidence_ref", "rule_version_id", "message")
    lines = []
    for row in rows:
        values = []
        for column in COLUMNS:
            value = row[column]
            if isinstance(value, date):
                value = value.isoformat()
            value = str(value)
            values.append(value.translate(COPY_ESCAPES) if column in free else value)
        lines.append("\t".join(values) + "\n")
    return "".join(lines)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"evidence_ref": "a\tb"},
        {"event_id": "back\\slash"},
        {"message": "two\nlines\r"},
        {"tier": "t\\t"},
        {"batch_id": "b\n"},
    ],
    ids=["plain", "tab", "backslash", "line-breaks", "escaped-looking", "batch-id"],
)
def test_the_copy_text_is_the_plainly_escaped_rows(changes: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    rows_list, plain = rows_and_plain_rows()
    # The special characters in one row only (the check is per batch, the escapes per value).
    rows_list[3] = rows_list[3]._replace(**changes)  # type: ignore[arg-type]
    plain[3] = {**plain[3], **changes}

    assert _copied(rows_list, monkeypatch) == _plain_copy_text(plain)


def _rows_of(partner_id: str) -> list[EventRow]:
    """The example rows under another partner id, one of them with each of COPY's special characters."""
    rows, _plain = rows_and_plain_rows()
    rows = [row._replace(partner_id=partner_id) for row in rows]
    rows[5] = rows[5]._replace(evidence_ref="a\tb\\c", message="two\nlines\r")
    return rows


@pytest.mark.postgres
def test_events_written_by_copy_and_by_json_read_back_as_the_portable_insert_writes_them(
    postgres_engine: Engine,
) -> None:
    written = {"copy": _rows_of("copy"), "json": _rows_of("json"), "portable": _rows_of("portable")}
    assert len(written["copy"]) >= events.COPY_MIN_ROWS

    with postgres_engine.begin() as conn:
        pg.copy_events(conn, written["copy"])
        inserted = {
            "json": pg.insert_events(conn, written["json"]),
            "portable": events.insert_events_portably(conn, written["portable"]),
        }
        again = {
            "json": pg.insert_events(conn, written["json"][:10]),
            "portable": events.insert_events_portably(conn, written["portable"][:10]),
        }
    with postgres_engine.connect() as conn:
        read = {p: events.find_events_portably(conn, p, [r.event_id for r in rows]) for p, rows in written.items()}

    assert inserted == {p: {r.event_id for r in written[p]} for p in inserted}
    assert again == {"json": set(), "portable": set()}, "existing events are skipped, not overwritten"
    assert read == {p: {r.event_id: r for r in rows} for p, rows in written.items()}


@pytest.mark.postgres
def test_finding_events_on_postgresql_is_the_portable_find(postgres_engine: Engine) -> None:
    rows = _rows_of("metro")
    ids = [r.event_id for r in rows]
    with postgres_engine.begin() as conn:
        pg.copy_events(conn, rows)
        credit_batches.insert_credit_batch(conn, CreditBatch("cb-1", "metro", ids), NOW)
    wanted = [*ids[::3], "never-submitted"]

    with postgres_engine.connect() as conn:
        owed = events.find_events(conn, "metro", wanted)
    with postgres_engine.begin() as conn:
        credit_batches.mark_credit_batch_posted(conn, "cb-1", NOW)
    with postgres_engine.connect() as conn:
        credited = (events.find_events(conn, "metro", wanted), events.find_events_portably(conn, "metro", wanted))
        of_another_partner = events.find_events_portably(conn, "other-partner", wanted)

    assert owed == {r.event_id: r for r in rows[::3]}
    assert credited[0] == credited[1]
    assert {r.status for r in credited[0].values()} == {CREDITED, NO_CREDIT}
    assert of_another_partner == {}
