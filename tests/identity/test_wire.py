"""Messages <-> domain values: consent answers joined from per-verdict encodings are the bytes of the response built
message by message (the plain twin of the fast path)."""

from __future__ import annotations

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as pb
from identity_svc.server import IdentityServices
from identity_svc.wire import answers_message, question_columns
from tests.identity.identity_helpers import FakeClock, granted_and_closed, stamp

TRANSIT = common_pb2.DATA_CATEGORY_TRANSIT


def answered(services: IdentityServices, request: pb.CheckConsentsRequest) -> pb.CheckConsentsResponse:
    """What CheckConsents answers: the questions read as columns, checked, the answers encoded."""
    return answers_message(services.consents.check_columns(*question_columns(request)))


def test_consent_answers_are_encoded_as_built_message_by_message(services: IdentityServices, clock: FakeClock) -> None:
    account, closed = granted_and_closed(services)
    cycling = common_pb2.DATA_CATEGORY_CYCLING
    asked = [(account, TRANSIT), (account, cycling), (closed, TRANSIT), ("3300001234567890", TRANSIT), ("x", cycling)]
    request = pb.CheckConsentsRequest(
        questions=[pb.ConsentQuestion(account_number=n, category=c, at=stamp(clock, hours=1)) for n, c in asked * 3]
    )
    response = answered(services, request)
    reasons = ["", "CONSENT_MISSING", "ACCOUNT_CLOSED", "UNKNOWN_ACCOUNT", "UNKNOWN_ACCOUNT"] * 3
    built = pb.CheckConsentsResponse(answers=[pb.ConsentAnswer(allowed=not r, reason=r) for r in reasons])
    assert response.SerializeToString() == built.SerializeToString()
    empty = answered(services, pb.CheckConsentsRequest())
    assert empty.SerializeToString() == b""
