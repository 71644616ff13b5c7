"""carbon.identity.v1 messages <-> identity_svc's domain values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as pb
from identity_svc.domain.accounts import AccountView, Binding, Ref, Resolved
from identity_svc.domain.bindings import BindingRecord
from identity_svc.domain.consents import ConsentRecord, ConsentVerdict
from service_kit.errors import InvalidArgument
from service_kit.wire import check_unix_us, from_timestamp, from_unix_us, to_timestamp


def account_message(view: AccountView) -> pb.Account:
    return pb.Account(
        account_number=view.account_number,
        region_code=view.region_code,
        state=pb.AccountState.ValueType(view.state),
        masked_name=view.masked_name,
        masked_id_number=view.masked_id_number,
        masked_phone_number=view.masked_phone_number,
        bindings=[
            common_pb2.ChannelBinding(platform=b.platform, platform_user_id=b.platform_user_id) for b in view.bindings
        ],
        opened_at=to_timestamp(view.opened_at),
        closed_at=to_timestamp(view.closed_at),
        opened_via=common_pb2.Channel.ValueType(view.opened_via),
        person_key=view.person_key,
        minor=view.minor,
        guardian_account_number=view.guardian_account_number,
    )


def binding_record_message(record: BindingRecord) -> pb.BindingRecord:
    return pb.BindingRecord(
        platform=record.platform,
        masked_platform_user_id=record.masked_platform_user_id,
        channel=common_pb2.Channel.ValueType(record.channel),
        bound_at=to_timestamp(record.bound_at),
        bound_by=record.bound_by,
    )


def consent_message(record: ConsentRecord) -> pb.ConsentRecord:
    return pb.ConsentRecord(
        account_number=record.account_number,
        category=common_pb2.DataCategory.ValueType(record.category),
        action=pb.ConsentAction.ValueType(record.action),
        effective_at=to_timestamp(record.effective_at),
        channel=common_pb2.Channel.ValueType(record.channel),
        recorded_by=record.recorded_by,
        guardian_account_number=record.guardian_account_number,
    )


def binding_from(request: pb.OpenAccountRequest) -> Binding | None:
    if not request.HasField("binding"):
        return None
    return Binding(platform=request.binding.platform, platform_user_id=request.binding.platform_user_id)


def ref_from(message: pb.ResolveAccountRequest | common_pb2.AccountRef, oneof: str, field: str) -> Ref:
    kind = message.WhichOneof(oneof)  # type: ignore[arg-type]
    if kind is None:
        raise InvalidArgument(field, "names no account: set one of its fields", reason="INVALID_ACCOUNT_REF")
    if kind == "binding":
        return Ref("binding", message.binding.platform, message.binding.platform_user_id)
    return Ref(kind, getattr(message, kind))


def resolved_message(found: Resolved | None) -> pb.ResolvedAccount:
    if found is None:
        return pb.ResolvedAccount(found=False)
    return pb.ResolvedAccount(
        account_number=found.account_number, state=pb.AccountState.ValueType(found.state), found=True
    )


def question_columns(request: pb.CheckConsentsRequest) -> tuple[list[str], list[int], list[datetime | None]]:
    """The questions as three columns (account numbers, categories, moments), no object per question. A batch
    repeats instants: each is converted once."""
    moments: dict[tuple[int, int], datetime] = {}
    account_numbers: list[str] = []
    categories: list[int] = []
    ats: list[datetime | None] = []
    for question in request.questions:
        account_numbers.append(question.account_number)
        categories.append(question.category)
        at: datetime | None = None
        if question.HasField("at"):
            stamp = question.at
            key = (stamp.seconds, stamp.nanos)
            at = moments.get(key)
            if at is None:
                at = moments[key] = from_timestamp(stamp)
        ats.append(at)
    return account_numbers, categories, ats


def column_moments(request: pb.CheckConsentColumnsRequest) -> list[datetime | None]:
    """The at_us column as instants, after checking every column has one entry per account number. 0 is no time
    (check_columns refuses it, naming the question); a batch repeats instants: each is converted once."""
    count = len(request.account_numbers)
    for name, column in (("categories", request.categories), ("at_us", request.at_us)):
        if len(column) != count:
            raise InvalidArgument(name, f"has {len(column)} entries for {count} account_numbers")
    check_unix_us(request.at_us, "at_us")
    moments: dict[int, datetime] = {}
    ats: list[datetime | None] = []
    for stamp in request.at_us:
        at = moments.get(stamp)
        if at is None and stamp:
            at = moments[stamp] = from_unix_us(stamp)
        ats.append(at)
    return ats


# Each distinct verdict encoded once as a CheckConsentsResponse holding just that answer. Repeated fields concatenate
# on the wire, so joining these is the encoding of the response with all the answers in order, which upb parses in
# C: cheaper than a ConsentAnswer message per question (ADR 0203; tests/identity/test_wire.py compares the bytes).
_ENCODED_ANSWERS: dict[tuple[bool, str], bytes] = {}


def _encoded_answer(verdict: ConsentVerdict) -> bytes:
    key = (verdict.allowed, verdict.reason)
    encoded = _ENCODED_ANSWERS.get(key)
    if encoded is None:
        answer = pb.ConsentAnswer(allowed=verdict.allowed, reason=verdict.reason)
        encoded = _ENCODED_ANSWERS[key] = pb.CheckConsentsResponse(answers=[answer]).SerializeToString()
    return encoded


def answers_message(verdicts: Sequence[ConsentVerdict]) -> pb.CheckConsentsResponse:
    return pb.CheckConsentsResponse.FromString(b"".join([_encoded_answer(verdict) for verdict in verdicts]))


def column_answers_message(verdicts: Sequence[ConsentVerdict]) -> pb.CheckConsentColumnsResponse:
    return pb.CheckConsentColumnsResponse(
        allowed=[verdict.allowed for verdict in verdicts], reasons=[verdict.reason for verdict in verdicts]
    )


def job_run_message(run: Row[Any]) -> pb.JobRun:
    """A job_runs row (store.jobs) as the wire's JobRun."""
    message = pb.JobRun(
        job=run.job, period=run.period, state=run.state, items=run.items, attempts=run.attempts, holder=run.holder,
        error=run.error, started_at=to_timestamp(run.started_at), updated_at=to_timestamp(run.updated_at),
    )  # fmt: skip
    if run.finished_at is not None:
        message.finished_at.CopyFrom(to_timestamp(run.finished_at))
    return message
