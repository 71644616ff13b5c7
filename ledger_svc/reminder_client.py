"""The ledger's one call out: reminders into the region's identity outbox (QueueReminders, ADR 0113)."""

from __future__ import annotations

from collections.abc import Sequence

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc as identity_grpc
from ledger_svc.domain.reminders import Digest, Expiring
from service_kit.peers import Peer
from service_kit.settings import Settings

QUEUE_TIMEOUT_S = 30.0


class IdentityReminders(Peer[identity_grpc.IdentityServiceStub]):
    """Queues notices in identity; the channel is opened at the first call (never before a fork)."""

    def __init__(self, address: str, settings: Settings) -> None:
        super().__init__("identity", identity_grpc.IdentityServiceStub, address, QUEUE_TIMEOUT_S, settings)

    def __call__(self, notices: Sequence[Expiring | Digest]) -> int:
        request = ipb.QueueRemindersRequest(notices=[_message(notice) for notice in notices])
        outcomes = self.stub().QueueReminders(request, timeout=self.deadline_s).outcomes
        return sum(1 for outcome in outcomes if outcome == ipb.REMINDER_QUEUE_OUTCOME_QUEUED)


def _message(notice: Expiring | Digest) -> ipb.ReminderNotice:
    message = ipb.ReminderNotice(notice_key=notice.notice_key, account_number=notice.account, points=notice.points)
    if isinstance(notice, Expiring):
        message.kind = ipb.REMINDER_KIND_EXPIRING_SOON
        day = notice.expires_on
        message.expires_on.CopyFrom(common_pb2.Date(year=day.year, month=day.month, day=day.day))
    else:
        message.kind = ipb.REMINDER_KIND_MONTHLY_DIGEST
        message.period = notice.period
    return message
