"""The ledger's reminder job against identity over gRPC on a real port (ADR 0113): on the (rehearsed) day, after
09:00 China time, residents with points expiring in 30 and 7 days and, on the 1st, every resident with points get a
notice in identity's outbox, once per notice key however often the run is repeated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from identity_svc.domain.reminders import DeliveryState, horizon_on
from identity_svc.server import SERVICE_NAME, IdentityServices, IdentityServiceServicer, registrations
from ledger_svc.domain.jobs import Job, RunState, Schedule
from ledger_svc.domain.time import add_months
from ledger_svc.reminder_client import IdentityReminders
from ledger_svc.service import scheduler, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.clock import china_day
from service_kit.db import make_engine, migrate
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from tests.identity.identity_helpers import SAMPLE_ID, opening
from tests.ledger.ledger_support import MovableClock, earn, migrated_engine
from tests.ledger.service.test_scheduler import LEASE, at
from tests.ops_api.ops_support import wait_for
from tests.service_identities import TRUST

REGION = "330000"
# The 1st of a month: the digest of February is due as well.
TODAY = date(2028, 3, 1)


@pytest.fixture
def identity(services: IdentityServices) -> Iterator[RunningServer]:
    add = identity_service_pb2_grpc.add_IdentityServiceServicer_to_server
    registration = Registration(add, IdentityServiceServicer(services), SERVICE_NAME)
    settings = Settings(service="identity_svc", region_code=REGION, port=0, max_workers=4)
    running = start_server(TRUST.server(settings), [registration])
    yield running
    running.stop()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[LedgerContext]:
    engine = migrated_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield LedgerContext(engine, REGION, MovableClock())
    engine.dispose()


def earn_expiring_on(ledger: LedgerContext, account: str, expires_on: date, points: int) -> None:
    """A lot earned two years before `expires_on`, posted on its day (lots expire two years after they are earned)."""
    clock = ledger.clock
    assert isinstance(clock, MovableClock)
    clock.now = at(add_months(expires_on, -24), hours=12)
    transfers.post_transfers(ledger, [earn(f"earn-{expires_on}", account, points)])


def test_the_days_reminders_reach_identitys_outbox_once_after_nine(
    services: IdentityServices, identity: RunningServer, ledger: LedgerContext
) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    earn_expiring_on(ledger, account, TODAY + timedelta(days=30), 10)
    earn_expiring_on(ledger, account, TODAY + timedelta(days=7), 20)
    earn_expiring_on(ledger, account, TODAY + timedelta(days=100), 40)
    queue = IdentityReminders(identity.address, TRUST.server(Settings(service="ledger_svc", region_code=REGION)))
    leader = scheduler.Scheduler(
        ledger, Schedule(), LEASE, holder="a", jobs=frozenset({Job.REMINDERS}), reminder_queue=queue
    )
    clock = ledger.clock
    assert isinstance(clock, MovableClock)
    clock.now = at(TODAY, hours=8, minutes=59)
    assert leader.tick() and scheduler.list_job_runs(ledger, "reminders", 0)[0] == [], "not before 09:00"
    clock.now = at(TODAY, hours=9, minutes=1)
    assert leader.tick()
    (run,) = scheduler.list_job_runs(ledger, "reminders", 0, TODAY.isoformat())[0]
    assert (run.state, run.items) == (RunState.DONE, 3)
    pending, _ = services.reminders.list(DeliveryState.PENDING, 0, "")
    assert {(row.notice_key, row.points, row.route) for row in pending} == {
        (f"expiring:{account}:2028-03-31:30", 10, "webhook:alipay"),
        (f"expiring:{account}:2028-03-08:7", 20, "webhook:alipay"),
        (f"digest:{account}:2028-02", 70, "webhook:alipay"),
    }
    # The same day asked for again by an operator (`carbon remind`): the run is done, nothing more is queued; a run
    # of the day before queues that day's own notices only (none here: no lot expires 30 or 7 days after it).
    assert scheduler.start_job_run(ledger, "reminders", TODAY.isoformat()).state == RunState.DONE
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    assert scheduler.start_job_run(ledger, "reminders", yesterday).state == RunState.QUEUED
    assert leader.tick()
    assert scheduler.list_job_runs(ledger, "reminders", 0, yesterday)[0][0].items == 0
    assert len(services.reminders.list(DeliveryState.PENDING, 0, "")[0]) == 3


def test_identity_started_with_reminders_on_delivers_a_counter_residents_reminder_by_sms(tmp_path: Path) -> None:
    """The wiring `carbon up` uses: CARBON_IDENTITY_REMINDERS=1 starts the delivery loop, SMS goes to the data dir."""
    extra = {"CARBON_IDENTITY_REMINDERS": "1", "CARBON_REMINDER_TICK_MS": "50"}
    settings = TRUST.server(
        Settings(service="identity_svc", region_code=REGION, data_dir=tmp_path, port=0, max_workers=4, extra=extra)
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'identity.db'}")
    migrate("identity_svc", engine)
    running = start_server(settings, registrations(settings, engine))
    try:
        with TRUST.allowed_channel(running.address, REGION) as channel:
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            opened = stub.OpenAccount(
                ipb.OpenAccountRequest(
                    request_id="counter-1", channel=common_pb2.CHANNEL_COMMUNITY_CENTRE, name="王秀英",
                    id_number=SAMPLE_ID, phone_number="13900002222", community_centre_id="centre-1",
                    staff_id="staff-1",
                ),
                timeout=10,
            )  # fmt: skip
            account = opened.account.account_number
            # The digest of the month just ended (one whose horizon has passed is not queued, ADR 0214).
            period = horizon_on(china_day(datetime.now(UTC))).previous_month
            notice = ipb.ReminderNotice(
                notice_key=f"digest:{account}:{period}", account_number=account, points=9, period=period,
                kind=ipb.REMINDER_KIND_MONTHLY_DIGEST,
            )  # fmt: skip
            queued = stub.QueueReminders(ipb.QueueRemindersRequest(notices=[notice]), timeout=10)
            assert list(queued.outcomes) == [ipb.REMINDER_QUEUE_OUTCOME_QUEUED]
            sms_file = tmp_path / f"sms-{REGION}.jsonl"
            wait_for(lambda: sms_file.exists() and sms_file.read_text(encoding="utf-8").strip(), what="the SMS")
            request = ipb.ListReminderDeliveriesRequest(state=ipb.REMINDER_DELIVERY_STATE_DELIVERED)
            delivered = wait_for(lambda: stub.ListReminderDeliveries(request, timeout=10).deliveries, what="recorded")
        (line,) = sms_file.read_text(encoding="utf-8").splitlines()
        assert json.loads(line)["phone_number"] == "13900002222"
        assert [(d.notice.notice_key, d.route, d.attempts) for d in delivered] == [(notice.notice_key, "sms", 1)]
    finally:
        running.stop()
        engine.dispose()
