"""The per-event shortcuts of reading and scoring events give exactly what the plain construction gives: the wire's
domain values and signed bytes, validation's CST day, scores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc import wire
from ingest_svc.catalog import load_catalog
from ingest_svc.domain import events as ev
from ingest_svc.domain.events import Acceptance, AccountRef, Event, PartnerScope, ValidEvent, validate
from ingest_svc.domain.rules import RuleBook
from ingest_svc.domain.scoring import Score, co2e_grams_for, points_for, score_events
from service_kit.accounts import new_account_number
from service_kit.partner_signing import canonical_bytes, signed_event

CATALOG = load_catalog()
BOOK = RuleBook(CATALOG.behaviours, CATALOG.rules)
ALL = PartnerScope(frozenset(BOOK.behaviours), frozenset({"110000", "310000"}))
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)
ACCOUNTS = [new_account_number("110000") for _ in range(7)]


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


def test_the_cst_day_shortcut_is_the_day_astimezone_gives() -> None:
    cst = timezone(timedelta(hours=8))
    start = datetime(2026, 2, 28, 15, 0, tzinfo=UTC)
    moments = [start + timedelta(minutes=7 * n, microseconds=n) for n in range(600)]
    moments += [datetime(2026, 3, 1, 15, 59, 59, 999_999, tzinfo=UTC), datetime(2026, 3, 1, 16, 0, tzinfo=UTC)]
    moments += [m.astimezone(cst) for m in moments[:50]]  # not UTC: the general path

    assert [ev.cst_day(m) for m in moments] == [m.astimezone(ev.CHINA_STANDARD_TIME).date() for m in moments]


def _valid_events() -> list[ValidEvent]:
    out = []
    for n in range(60):
        behaviour = ["transit_trip", "bike_km", "green_appliance"][n % 3]
        event = Event(
            event_id=f"e-{n}" if n % 2 else f"e-{n}-电",
            account=AccountRef(ACCOUNTS[n % 3]),
            behaviour=behaviour,
            quantity_milli=1000 if behaviour != "bike_km" else 2500 + 777 * n,
            occurred_at=NOW - timedelta(hours=n % 30, microseconds=n),
            region_code="110000",
            evidence_ref=f"r/{n}" if n % 4 else "",
            tier="tier_3" if behaviour == "green_appliance" else "",
        )
        checked = validate(event, ALL, BOOK, NOW, Acceptance())
        assert isinstance(checked, ValidEvent), checked
        out.append(checked)
    return out


def test_scores_are_the_rule_arithmetic_with_the_daily_cap() -> None:
    pairs = [(valid, ACCOUNTS[n % 3]) for n, valid in enumerate(_valid_events())]
    earlier = {(ACCOUNTS[0], "transit_trip", pairs[0][0].day): 9000}

    scores, totals = score_events(pairs, earlier)

    # Plainly: each event counts what is left of its key's cap after everything before it.
    running: dict[tuple[str, str, date], int] = dict(earlier)
    expected = []
    for valid, account in pairs:
        rule, quantity = valid.rule, valid.event.quantity_milli
        key = (account, rule.behaviour, valid.day)
        before = running.get(key, 0)
        counted = min(quantity, max(0, rule.daily_cap_milli - before)) if rule.daily_cap_milli else quantity
        running[key] = before + counted
        capped = counted < quantity
        expected.append(
            Score(
                event=valid,
                account_number=account,
                counted_milli=counted,
                points=points_for(rule, valid.event.tier, counted),
                co2e_grams=co2e_grams_for(rule, counted),
                reason=ev.DAILY_CAP_REACHED if capped else "",
                message=(
                    f"daily cap of {rule.daily_cap_milli} reached: counted {counted} of {quantity} "
                    f"({before} counted earlier on {valid.day.isoformat()} CST)"
                )
                if capped
                else "",
                counted_before_milli=before,
            )
        )
    assert scores == expected
    assert {type(s) for s in scores} == {Score} and {type(p[0]) for p in pairs} == {ValidEvent}
    assert any(s.reason for s in scores) and any(not s.reason for s in scores)
    assert totals == {key: n for key, n in running.items() if key in totals} and len(totals) == len(
        {(a, v.rule.behaviour, v.day) for v, a in pairs}
    )
