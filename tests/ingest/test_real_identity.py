"""Worked cases end to end through the real identity server (accounts, bindings, consent history) and the real
ledger server: balances asserted with GetBalance, conservation with CheckConservation (when each harness ends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.ingest.v1 import ingest_service_pb2 as pb
from service_kit.wire import to_timestamp
from tests.ingest.ingest_harness import Harness, make_harness, real_clock

A, D = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_DUPLICATE
TRANSIT = (common_pb2.DATA_CATEGORY_TRANSIT,)


@pytest.fixture
def shanghai_real(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    yield from make_harness(database_url, data_dir=tmp_path, region="310000", real_identity=True, clock=real_clock())


def test_mr_li_600_points_resolved_by_his_alipay_binding(real_harness: Harness) -> None:
    harness = real_harness
    start = harness.clock.now
    li = harness.open_account(consent=TRANSIT, binding="li-alipay")
    harness.register()
    total = 0
    for day in range(30):
        at = start + timedelta(days=day, hours=1)
        harness.clock.now = at + timedelta(hours=2)
        trips = [harness.event(li, at=at), harness.event(li, at=at + timedelta(minutes=40))]
        for trip in trips:  # the partner knows Mr Li by his Alipay user id, not his account number
            trip.account.CopyFrom(
                common_pb2.AccountRef(
                    binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="li-alipay")
                )
            )
        results = harness.submit(trips)
        assert [r.outcome for r in results] == [A, A], results
        total += sum(r.points for r in results)
    assert total == 600 == harness.ledger.balance(li) == harness.ledger.issued()
    assert harness.ledger.calls == 30, "one ledger call per batch"


def test_ms_zhang_20_supervisor_days_earn_1000_points_in_shanghai(shanghai_real: Harness) -> None:
    harness = shanghai_real
    start = harness.clock.now
    zhang = harness.open_account(consent=(common_pb2.DATA_CATEGORY_GARBAGE_SORTING,))
    harness.register()
    results: list[pb.EventResult] = []
    for week in range(3):
        harness.clock.now = start + timedelta(days=7 * week + 7)
        days = range(7 * week, min(7 * week + 7, 20))
        results += harness.submit(
            [harness.event(zhang, "sorting_supervisor_day", at=start + timedelta(days=d, hours=2)) for d in days]
        )
    assert len(results) == 20 and all(r.outcome == A for r in results), results
    assert sum(r.points for r in results) == 1000 == harness.ledger.balance(zhang)


def test_a_replayed_batch_credits_once_in_the_real_ledger(real_harness: Harness) -> None:
    harness = real_harness
    li = harness.open_account(consent=TRANSIT)
    harness.register()
    events = [harness.event(li), harness.event(li), harness.event(li)]
    first = harness.submit(events)
    again = harness.submit(events)
    harness.clock.advance(timedelta(hours=1))
    later = harness.submit([*events[1:], harness.event(li)])
    assert [r.outcome for r in first] == [A] * 3
    assert [r.outcome for r in again] == [D] * 3
    assert [r.outcome for r in later] == [D, D, A]
    assert [r.ledger_transfer_id for r in again] == [r.ledger_transfer_id for r in first]
    assert harness.ledger.balance(li) == 40 == harness.ledger.issued()


def test_consent_revoked_in_identity_stops_scoring_from_then(real_harness: Harness) -> None:
    harness = real_harness
    assert harness.identity_stub is not None
    li = harness.open_account(consent=TRANSIT)
    harness.register()
    revoked_at = harness.clock.now - timedelta(days=1)  # identity refuses consent changes dated in the future
    harness.identity_stub.RevokeConsent(
        ipb.RevokeConsentRequest(
            request_id="revoke",
            account_number=li,
            category=common_pb2.DATA_CATEGORY_TRANSIT,
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
            recorded_by="alipay",
            effective_at=to_timestamp(revoked_at),
        )
    )
    results = harness.submit(
        [harness.event(li, at=revoked_at - timedelta(hours=1)), harness.event(li, at=revoked_at + timedelta(hours=1))]
    )
    assert [(r.outcome, r.reason) for r in results] == [(A, ""), (pb.EVENT_OUTCOME_REJECTED, "CONSENT_REVOKED")]
    assert harness.ledger.balance(li) == 10
