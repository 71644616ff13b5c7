"""32 partner clients submitting single events at once, some of them the same event: each event credits once."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from carbon.ingest.v1 import ingest_service_pb2 as pb
from tests.ingest.ingest_harness import Harness

CLIENTS = 32
DISTINCT_EVENTS = 24  # the other 8 submissions repeat one of these


def test_32_concurrent_single_event_submissions_with_duplicates_credit_each_event_once(harness: Harness) -> None:
    harness.register()
    accounts = [harness.open_account() for _ in range(4)]
    events = [harness.event(accounts[i % 4], event_id=f"trip-{i}") for i in range(DISTINCT_EVENTS)]
    submissions = events + events[:: DISTINCT_EVENTS // (CLIENTS - DISTINCT_EVENTS)]
    assert len(submissions) == CLIENTS
    requests = [harness.request([event], batch_id=f"single-{n}") for n, event in enumerate(submissions)]
    start = threading.Barrier(CLIENTS)

    def submit(request: pb.SubmitEventsRequest) -> pb.EventResult:
        start.wait(timeout=30)  # all 32 in flight together
        (result,) = harness.stub.SubmitEvents(request, timeout=60).results
        return result

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(submit, requests))

    outcomes = Counter((r.event_id, r.outcome) for r in results)
    for event in events:
        repeats = sum(1 for s in submissions if s.event_id == event.event_id)
        assert outcomes[(event.event_id, pb.EVENT_OUTCOME_ACCEPTED)] == 1, event.event_id
        assert outcomes[(event.event_id, pb.EVENT_OUTCOME_DUPLICATE)] == repeats - 1, event.event_id
    assert all(r.first_outcome == pb.EVENT_OUTCOME_ACCEPTED for r in results if r.outcome == pb.EVENT_OUTCOME_DUPLICATE)
    assert [harness.ledger.balance(a) for a in accounts] == [60, 60, 60, 60]
    assert harness.ledger.issued() == 10 * DISTINCT_EVENTS


def test_concurrent_batches_on_the_same_accounts_and_day_never_pass_the_daily_cap(harness: Harness) -> None:
    """16 batches at once, 3 trips each for the same 2 accounts on one day: the cap of 10 trips holds exactly,
    also when they race to create the day's counters."""
    harness.register()
    accounts = [harness.open_account() for _ in range(2)]
    batches = [
        harness.request([harness.event(a, event_id=f"b{b}-{a}-{i}") for a in accounts for i in range(3)], f"b{b}")
        for b in range(16)
    ]
    start = threading.Barrier(len(batches))

    def submit(request: pb.SubmitEventsRequest) -> list[pb.EventResult]:
        start.wait(timeout=30)
        return list(harness.stub.SubmitEvents(request, timeout=60).results)

    with ThreadPoolExecutor(len(batches)) as pool:
        results = [r for batch in pool.map(submit, batches) for r in batch]

    assert all(r.outcome == pb.EVENT_OUTCOME_ACCEPTED for r in results)
    assert sum(1 for r in results if r.points) == 20, "10 counted trips per account"
    assert sum(1 for r in results if r.reason == "DAILY_CAP_REACHED") == 16 * 6 - 20
    assert [harness.ledger.balance(a) for a in accounts] == [100, 100]
