"""An accepted event's row: built by position in the table's column order, the same values as the row built plainly,
column by column."""

from __future__ import annotations

from ingest_svc.domain.event_rows import NO_CREDIT, PENDING, EventRow
from ingest_svc.store.tables import events
from tests.ingest.examples import rows_and_plain_rows


def test_event_rows_hold_the_plain_rows_values_in_column_order() -> None:
    rows, plain = rows_and_plain_rows()

    assert [row._asdict() for row in rows] == plain
    assert {type(row) for row in rows} == {EventRow}
    assert list(EventRow._fields) == [column.name for column in events.columns]
    assert {row.status for row in rows} == {PENDING, NO_CREDIT}
    # The plain row, named column by column, is the same EventRow.
    assert [EventRow(**p) for p in plain] == rows
