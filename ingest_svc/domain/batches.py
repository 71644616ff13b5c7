"""A group of one partner's batches on their way to results: every event checked, repeats of an event id found by
value, and, once the valid events have their outcomes, each batch's results put back in its own order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ingest_svc.domain.events import Event, Rejection, Validator, ValidEvent, new_tuple
from ingest_svc.domain.results import Result, rejected, repeat_of, repeated_in_batch


class Candidate(NamedTuple):
    """A valid event, the first of its id in the group, with the id of the batch that carried it."""

    valid: ValidEvent
    batch_id: str


class Submitted(NamedTuple):
    """One batch of the group: its id, its events, and the validator for the moment it arrived."""

    batch_id: str
    events: Sequence[Event]
    check: Validator


@dataclass
class CheckedGroup:
    # Per batch, per event in its order: the result decided by the checks, or None where the event takes the outcome
    # of its event id (a candidate, or a repeat of another batch's candidate).
    decided: list[list[Result | None]] = field(default_factory=list)
    # Per batch: positions of events that a batch before it in the group carried first.
    repeats: list[list[int]] = field(default_factory=list)
    # The first valid event of each id, by event id, in group order.
    candidates: dict[str, Candidate] = field(default_factory=dict)


def check_group(batches: Sequence[Submitted]) -> CheckedGroup:
    """Checks every event. An invalid one is rejected; a repeat within its batch is a DUPLICATE at once; the first
    valid event of each id becomes a candidate, and a later batch's repeat of it waits for the candidate's outcome."""
    group = CheckedGroup()
    first_batch: dict[str, int] = {}  # event id -> the number of the batch that carried it first
    for number, batch in enumerate(batches):
        decided: list[Result | None] = []
        repeats: list[int] = []
        _check_batch(number, batch, group.candidates, first_batch, decided, repeats)
        group.decided.append(decided)
        group.repeats.append(repeats)
    return group


def _check_batch(
    number: int,
    batch: Submitted,
    candidates: dict[str, Candidate],
    first_batch: dict[str, int],
    decided: list[Result | None],
    repeats: list[int],
) -> None:
    batch_id, check = batch.batch_id, batch.check
    append = decided.append
    for position, event in enumerate(batch.events):
        checked = check(event)
        event_id = event.event_id
        if isinstance(checked, Rejection):
            append(rejected(event_id, checked.reason, checked.message))
        elif event_id not in first_batch:
            first_batch[event_id] = number
            candidates[event_id] = new_tuple(Candidate, (checked, batch_id))
            append(None)
        elif first_batch[event_id] == number:
            append(repeated_in_batch(event_id))
        else:
            append(None)
            repeats.append(position)


def assemble(batches: Sequence[Submitted], group: CheckedGroup, outcomes: Mapping[str, Result]) -> list[list[Result]]:
    """Each batch's results in its order: what the checks decided, else the outcome of the event's id (for a repeat
    of another batch's event, what a later submission of it would be told)."""
    answers: list[list[Result]] = []
    for batch, decided, repeats in zip(batches, group.decided, group.repeats, strict=True):
        results = [
            outcomes[event.event_id] if result is None else result
            for event, result in zip(batch.events, decided, strict=True)
        ]
        for position in repeats:
            results[position] = repeat_of(results[position])
        answers.append(results)
    return answers
