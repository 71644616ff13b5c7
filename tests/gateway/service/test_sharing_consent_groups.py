"""The sharing-consent questions of concurrent requests grouped into one CheckConsents call per region: each question
still gets exactly the answer (or the error) a call of its own would have given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from gateway.clients import RemoteError
from gateway.service.sharing_consent import SharingConsentQuestions, _Question
from service_kit.errors import FailedPrecondition, Unavailable
from service_kit.wire import to_timestamp

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "refused"

    def trailing_metadata(self) -> tuple[()]:
        return ()


class FakeIdentity:
    """Answers each question on its own: an account ending in 9 has not consented; records the calls' sizes."""

    def __init__(self, call_error: grpc.StatusCode | None = None) -> None:
        self.calls: list[int] = []
        self.call_error = call_error

    def CheckConsents(self, request: ipb.CheckConsentsRequest, timeout: float) -> ipb.CheckConsentsResponse:
        self.calls.append(len(request.questions))
        if self.call_error is not None and len(request.questions) > 1:
            raise Refused(self.call_error)
        return ipb.CheckConsentsResponse(
            answers=[
                ipb.ConsentAnswer(allowed=False, reason="CONSENT_MISSING")
                if q.account_number.endswith("9")
                else ipb.ConsentAnswer(allowed=True)
                for q in request.questions
            ]
        )


class Region:
    region_code = "330000"


class Registry:
    """Every account is Zhejiang's."""

    def route(self, account_number: str, field: str = "account_number") -> Region:
        return Region()


class Clients:
    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.registry = Registry()

    def identity(self, region_code: str) -> Any:
        return self.stub


def questions(*numbers: str) -> list[_Question]:
    at = to_timestamp(NOW)
    return [
        _Question(
            "330000",
            ipb.ConsentQuestion(account_number=n, category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING, at=at),
            5.0,
        )
        for n in numbers
    ]


def test_a_group_is_one_call_and_each_question_gets_its_own_answer() -> None:
    fake = FakeIdentity()
    answers = SharingConsentQuestions(Clients(fake))._ask_group(questions("1", "9", "2"))  # type: ignore[arg-type]
    assert fake.calls == [3]
    assert [isinstance(a, ipb.ConsentAnswer) and a.allowed for a in answers] == [True, False, True]


def test_a_silent_region_fails_every_member_for_a_retry() -> None:
    fake = FakeIdentity(call_error=grpc.StatusCode.UNAVAILABLE)
    answers = SharingConsentQuestions(Clients(fake))._ask_group(questions("1", "2"))  # type: ignore[arg-type]
    assert fake.calls == [2]
    assert all(isinstance(a, RemoteError) and not a.final for a in answers)


def test_a_refused_group_is_asked_again_question_by_question() -> None:
    fake = FakeIdentity(call_error=grpc.StatusCode.INVALID_ARGUMENT)
    answers = SharingConsentQuestions(Clients(fake))._ask_group(questions("1", "9"))  # type: ignore[arg-type]
    assert fake.calls == [2, 1, 1]
    assert [isinstance(a, ipb.ConsentAnswer) and a.allowed for a in answers] == [True, False]


def test_a_question_out_of_time_is_asked_alone() -> None:
    fake = FakeIdentity()
    late = [q._replace(timeout_s=0.0) if q.question.account_number == "2" else q for q in questions("1", "2")]
    answers = SharingConsentQuestions(Clients(fake))._ask_group(late)  # type: ignore[arg-type]
    assert fake.calls == [1]  # the late one never left: no time for its call
    assert isinstance(answers[0], ipb.ConsentAnswer) and answers[0].allowed
    assert isinstance(answers[1], RemoteError) and answers[1].reason == "NO_TIME_LEFT"


def test_the_check_judges_the_accounts_in_the_order_asked() -> None:
    consents = SharingConsentQuestions(Clients(FakeIdentity()))  # type: ignore[arg-type]
    consents.ask([("from_account", "1"), ("to_account", "2")], NOW, 5.0)()
    with pytest.raises(FailedPrecondition) as refused:
        consents.ask([("from_account", "1"), ("to_account", "9")], NOW, 5.0)()
    assert refused.value.metadata["field"] == "to_account"


class SilentIdentity:
    def CheckConsents(self, request: ipb.CheckConsentsRequest, timeout: float) -> ipb.CheckConsentsResponse:
        raise Refused(grpc.StatusCode.UNAVAILABLE)


def test_a_silent_region_is_unavailable_to_the_caller() -> None:
    consents = SharingConsentQuestions(Clients(SilentIdentity()))  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        consents.ask([("from_account", "1")], NOW, 5.0)()
