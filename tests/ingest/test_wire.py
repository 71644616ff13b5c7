"""Messages <-> domain values: a batch's events and signed bytes read in one pass are the plain events and the
documented canonical bytes, and the response built in place is the message built result by result."""

from __future__ import annotations

from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc import wire
from ingest_svc.domain import events as ev
from ingest_svc.domain.events import AccountRef, Event
from ingest_svc.domain.results import ACCEPTED, DUPLICATE, REJECTED, Result
from service_kit.partner_signing import canonical_bytes, signed_event
from tests.ingest.examples import ACCOUNTS


def _messages() -> list[pb.Event]:
    """Events of every account kind, with and without a time, unicode, nanoseconds, tiers and evidence."""
    out = []
    for n in range(40):
        kind = n % 4
        account = [
            common_pb2.AccountRef(account_number=ACCOUNTS[n % len(ACCOUNTS)]),
            common_pb2.AccountRef(binding=common_pb2.ChannelBinding(platform="支付宝", platform_user_id=f"u-{n}")),
            common_pb2.AccountRef(phone_number=f"1390000{n:04d}"),
            common_pb2.AccountRef(),
        ][kind]
        message = pb.Event(
            event_id=f"e-{n}-电" if n % 3 else f"e-{n}",
            account=account,
            behaviour=["transit_trip", "bike_km", "green_appliance"][n % 3],
            quantity_milli=1000 * (n % 5) - 1000,
            region_code="110000" if n % 7 else "31000",
            evidence_ref="" if n % 2 else f"receipt/{n}",
            tier="tier_1" if n % 3 == 2 else "",
        )
        if n % 5:
            # Distinct instants, before and after the epoch, with nanoseconds that do and do not round.
            seconds = -86_399 * n if n % 11 == 0 else 1_772_337_600 - 86_399 * n
            message.occurred_at.CopyFrom(Timestamp(seconds=seconds, nanos=n * 12_345_679 % 1_000_000_000))
        out.append(message)
    return out


def _plain_event(message: pb.Event) -> Event:
    ref = message.account
    which = ref.WhichOneof("ref")
    account = AccountRef(
        account_number=ref.account_number if which == "account_number" else "",
        platform=ref.binding.platform if which == "binding" else "",
        platform_user_id=ref.binding.platform_user_id if which == "binding" else "",
        phone_number=ref.phone_number if which == "phone_number" else "",
    )
    return Event(
        event_id=message.event_id,
        account=account,
        behaviour=message.behaviour,
        quantity_milli=message.quantity_milli,
        occurred_at=message.occurred_at.ToDatetime(tzinfo=UTC) if message.HasField("occurred_at") else None,
        region_code=message.region_code,
        evidence_ref=message.evidence_ref,
        tier=message.tier,
    )


def test_batch_events_builds_the_plain_events_and_the_documented_bytes() -> None:
    request = pb.SubmitEventsRequest(partner_id="bus-co", batch_id="b-电", events=_messages())

    events, encoded = wire.batch_events(request)

    plain = [_plain_event(message) for message in request.events]
    assert events == plain
    assert [type(e) for e in events] == [Event] * len(plain)
    assert [type(e.account) for e in events] == [AccountRef] * len(plain)
    assert [e.occurred_at.tzinfo if e.occurred_at else None for e in events] == [
        e.occurred_at.tzinfo if e.occurred_at else None for e in plain
    ]
    assert encoded == canonical_bytes("bus-co", "b-电", [signed_event(m) for m in request.events])


def test_the_servers_one_pass_encoding_equals_the_documented_canonical_bytes() -> None:
    stamp = Timestamp(seconds=1_772_337_600, nanos=123_456_789)
    request = pb.SubmitEventsRequest(
        partner_id="bus-co",
        batch_id="b-1",
        events=[
            pb.Event(event_id="e1", account=common_pb2.AccountRef(account_number="11000012345678"), occurred_at=stamp),
            pb.Event(
                event_id="e2 电",
                account=common_pb2.AccountRef(binding=common_pb2.ChannelBinding(platform="ali", platform_user_id="u")),
                behaviour="green_appliance",
                quantity_milli=2000,
                region_code="110000",
                evidence_ref="receipt/1",
                tier="tier_1",
            ),
            pb.Event(event_id="e3", account=common_pb2.AccountRef(phone_number="13900000000"), occurred_at=stamp),
            pb.Event(event_id="e4"),
        ],
    )
    events, encoded = wire.batch_events(request)
    signed = [signed_event(message) for message in request.events]
    assert encoded == canonical_bytes("bus-co", "b-1", signed)
    assert events[0].occurred_at == stamp.ToDatetime(tzinfo=UTC)
    assert events[1].account.platform_user_id == "u" and events[1].occurred_at is None
    assert events[2].account.phone_number == "13900000000" and events[3].account.kind == ""


def test_submit_response_built_in_place_is_the_message_per_result_response() -> None:
    results = [
        Result("e1", ACCEPTED, 3, 120, "earn-1"),
        Result("e2", ACCEPTED, 0, 0, "", ev.DAILY_CAP_REACHED, "daily cap of 10000 reached"),
        Result("e3", DUPLICATE, 3, 120, "earn-3", ev.DUPLICATE_EVENT, "first accepted at ...", ACCEPTED),
        Result("e4", DUPLICATE, 0, 0, "", ev.DUPLICATE_EVENT, "first accepted at ...", REJECTED),
        Result("e5", REJECTED, reason=ev.CONSENT_MISSING, message="no TRANSIT consent"),
        Result("e6", ""),
    ]

    built = wire.submit_response(results)

    # Built the plain way, every field given (the in-place builder leaves empty ones unset): the same message.
    expected = pb.SubmitEventsResponse(
        results=[
            pb.EventResult(
                event_id=r.event_id,
                outcome=wire.outcome(r.outcome),
                points=r.points,
                co2e_grams=r.co2e_grams,
                ledger_transfer_id=r.transfer_id,
                reason=r.reason,
                message=r.message,
                first_outcome=wire.outcome(r.first_outcome),
            )
            for r in results
        ]
    )
    assert built == expected
    assert built.SerializeToString() == expected.SerializeToString()
    assert list(built.results) == [wire.event_result(r) for r in results]
