"""A group of batches on its way to results: candidates found by event id, repeats within a batch answered at once,
repeats of another batch's event answered as a later submission of it would be, each batch's results in its order."""

from __future__ import annotations

from ingest_svc.domain import events as ev
from ingest_svc.domain.batches import Submitted, assemble, check_group
from ingest_svc.domain.events import Acceptance, validator
from ingest_svc.domain.results import ACCEPTED, DUPLICATE, REJECTED, Result, rejected
from tests.ingest.examples import ALL, BOOK, NOW, event

CHECK = validator(ALL, BOOK, NOW, Acceptance())


def _group() -> list[Submitted]:
    first = [event(event_id="e1"), event(event_id="bad", quantity_milli=0), event(event_id="e1")]
    second = [event(event_id="e1"), event(event_id="e3"), event(event_id="e4")]
    return [Submitted("b-1", first, CHECK), Submitted("b-2", second, CHECK)]


def test_the_first_valid_event_of_each_id_is_a_candidate_of_its_batch() -> None:
    checked = check_group(_group())

    assert {event_id: c.batch_id for event_id, c in checked.candidates.items()} == {
        "e1": "b-1",
        "e3": "b-2",
        "e4": "b-2",
    }
    assert [[r.reason if r else None for r in decided] for decided in checked.decided] == [
        [None, ev.INVALID_QUANTITY, ev.DUPLICATE_EVENT],
        [None, None, None],
    ]
    assert checked.repeats == [[], [0]]


def test_each_batch_gets_its_results_in_order_and_a_repeat_what_a_later_submission_would_get() -> None:
    group = _group()
    checked = check_group(group)
    outcomes = {
        "e1": Result("e1", ACCEPTED, 10, 515, "earn-1"),
        "e3": rejected("e3", ev.CONSENT_MISSING, "no TRANSIT consent"),
        "e4": Result("e4", ACCEPTED, 10, 515, "earn-4"),
    }

    results = assemble(group, checked, outcomes)

    assert [[(r.event_id, r.outcome, r.first_outcome) for r in batch] for batch in results] == [
        [("e1", ACCEPTED, ""), ("bad", REJECTED, ""), ("e1", DUPLICATE, "")],
        [("e1", DUPLICATE, ACCEPTED), ("e3", REJECTED, ""), ("e4", ACCEPTED, "")],
    ]
    assert results[1][0].transfer_id == "earn-1" and results[1][0].points == 10
    assert results[0][2].message == "repeated within the batch"


def test_a_repeat_of_a_rejected_event_in_another_batch_gets_the_same_rejection() -> None:
    group = _group()
    outcomes = {
        "e1": rejected("e1", ev.UNKNOWN_ACCOUNT, "account: not found"),
        "e3": Result("e3", ACCEPTED),
        "e4": Result("e4", ACCEPTED),
    }

    results = assemble(group, check_group(group), outcomes)

    assert results[1][0] == outcomes["e1"] == results[0][0]
