"""Reminders through the ops API: a resident switches them off at the counter (identity then records a notice as
OPTED_OUT), operators list the dead letters and retry one."""

from __future__ import annotations

from datetime import UTC, datetime

from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc as identity_grpc
from identity_svc.domain.reminders import horizon_on
from service_kit import identities
from service_kit.clock import china_day
from service_kit.topology import Registry
from tests.ops_api.ops_support import Ops
from tests.service_identities import TRUST


def queue_digest(ops: Ops, account: str) -> int:
    registry = Registry.load(ops.federation.registry_path)
    address = next(r.identity_address for r in registry.regions if r.region_code == account[:6])
    # The digest of the month just ended (one whose horizon has passed is not queued, ADR 0214).
    period = horizon_on(china_day(datetime.now(UTC))).previous_month
    notice = ipb.ReminderNotice(
        notice_key=f"digest:{account}:{period}", account_number=account, kind=ipb.REMINDER_KIND_MONTHLY_DIGEST,
        points=5, period=period,
    )  # fmt: skip
    with TRUST.channel(address, identities.OPS_API) as channel:
        request = ipb.QueueRemindersRequest(notices=[notice])
        return identity_grpc.IdentityServiceStub(channel).QueueReminders(request).outcomes[0]


def test_a_resident_switches_reminders_off_at_the_counter(ops: Ops) -> None:
    account = ops.open_account()
    path = f"/v1/accounts/{account}/reminder-preference"
    refused = ops.client.put(path, headers=ops.headers("viewer"), json={"reminders_off": True})
    assert (refused.status_code, refused.json()["reason"]) == (403, "ROLE_NOT_ALLOWED")
    switched = ops.client.put(path, headers=ops.headers("zj-staff"), json={"reminders_off": True})
    assert switched.status_code == 200, switched.text
    assert switched.json() == {"account_number": account, "reminders_off": True}
    assert queue_digest(ops, account) == ipb.REMINDER_QUEUE_OUTCOME_OPTED_OUT


def test_operators_list_dead_reminders_and_a_retry_names_an_unknown_one(ops: Ops) -> None:
    listed = ops.get("op1", "/v1/regions/330000/dead-reminders")
    assert listed.status_code == 200, listed.text
    assert all(d["state"] == "REMINDER_DELIVERY_STATE_DEAD" for d in listed.json()["deliveries"])
    missing = ops.post("op1", "/v1/regions/330000/dead-reminders/no-such-notice/retry")
    assert (missing.status_code, missing.json()["reason"]) == (404, "REMINDER_NOT_FOUND")
    assert ops.get("viewer", "/v1/regions/330000/dead-reminders").status_code == 403
