"""What an event is told: a recorded event's result (REJECTED when the ledger refused its credit), a duplicate's
first result, and a repeat within a group."""

from __future__ import annotations

from ingest_svc.domain import events as ev
from ingest_svc.domain.event_rows import CREDITED, LEDGER_FAILED, NO_CREDIT
from ingest_svc.domain.results import ACCEPTED, DUPLICATE, REJECTED, Result, duplicate_of, recorded, repeat_of
from tests.ingest.examples import rows_and_plain_rows


def test_a_recorded_event_is_told_its_score_in_field_order() -> None:
    rows, _plain = rows_and_plain_rows()
    scored = next(row for row in rows if row.points)
    capped = next(row for row in rows if row.status == NO_CREDIT)
    refused = scored._replace(status=LEDGER_FAILED, reason=ev.LEDGER_REJECTED, message="UNKNOWN_ACCOUNT: gone")

    assert recorded(scored) == Result(
        event_id=scored.event_id,
        outcome=ACCEPTED,
        points=scored.points,
        co2e_grams=scored.co2e_grams,
        transfer_id=scored.transfer_id,
        reason=scored.reason,
        message=scored.message,
    )
    assert recorded(capped) == Result(
        event_id=capped.event_id, outcome=ACCEPTED, reason=ev.DAILY_CAP_REACHED, message=capped.message
    )
    assert recorded(refused) == recorded(scored)._replace(
        outcome=REJECTED, reason=ev.LEDGER_REJECTED, message="UNKNOWN_ACCOUNT: gone"
    )
    assert type(recorded(scored)) is Result


def test_a_duplicate_is_told_when_it_was_first_accepted_and_what_it_was_told() -> None:
    rows, _plain = rows_and_plain_rows()
    first = rows[0]._replace(status=CREDITED)

    told = duplicate_of(first)
    refused = duplicate_of(first._replace(status=LEDGER_FAILED))

    assert (told.outcome, told.first_outcome, told.reason) == (DUPLICATE, ACCEPTED, ev.DUPLICATE_EVENT)
    assert (told.points, told.transfer_id) == (first.points, first.transfer_id)
    assert told.message == f"first accepted at {first.accepted_at.isoformat()}"
    assert refused.first_outcome == REJECTED


def test_a_repeat_of_an_accepted_event_is_its_duplicate_and_of_a_rejected_one_the_same_rejection() -> None:
    accepted = Result("e1", ACCEPTED, 10, 515, "earn-1")
    rejection = Result("e2", REJECTED, reason=ev.CONSENT_MISSING, message="no TRANSIT consent")

    assert repeat_of(accepted) == Result(
        "e1",
        DUPLICATE,
        10,
        515,
        "earn-1",
        ev.DUPLICATE_EVENT,
        "submitted concurrently with its first submission",
        ACCEPTED,
    )
    assert repeat_of(rejection) is rejection
