"""Small gRPC clients of the identity and ledger services: one batched call each, always with a deadline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import grpc

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from ingest_svc.domain.events import AccountRef
from service_kit.errors import Unavailable
from service_kit.telemetry import instrument_channel
from service_kit.wire import to_unix_us

DEFAULT_DEADLINE_S = 10.0
ISSUANCE_ACCOUNT = "system:issuance"


# Values passed to and from the clients are named tuples: built once or twice per event, and a frozen dataclass's
# __init__ (object.__setattr__ per field) cost about four times as much. Immutable all the same.
class Resolved(NamedTuple):
    account_number: str  # "" when not found
    closed: bool


class ConsentQuestion(NamedTuple):
    account_number: str
    category: str  # DataCategory name without prefix
    at: datetime


class ConsentAnswer(NamedTuple):
    allowed: bool
    reason: str


class EarnCredit(NamedTuple):
    transfer_id: str
    account_number: str
    points: int
    earned_at: datetime
    co2e_grams: int
    reference: str
    metadata: dict[str, str]


class CreditResult(NamedTuple):
    transfer_id: str
    credited: bool  # POSTED or ALREADY_POSTED
    failure_reason: str
    failure_message: str


_EARN = ledger_service_pb2.TRANSFER_CODE_EARN
_CREDITED = frozenset({ledger_service_pb2.TRANSFER_STATUS_POSTED, ledger_service_pb2.TRANSFER_STATUS_ALREADY_POSTED})
_UNSET = CreditResult("", False, "", "")


def _ref(ref: AccountRef) -> common_pb2.AccountRef:
    if ref.account_number:
        return common_pb2.AccountRef(account_number=ref.account_number)
    if ref.phone_number:
        return common_pb2.AccountRef(phone_number=ref.phone_number)
    return common_pb2.AccountRef(
        binding=common_pb2.ChannelBinding(platform=ref.platform, platform_user_id=ref.platform_user_id)
    )


def _require(address: str, service: str) -> None:
    if not address:
        raise Unavailable("DEPENDENCY_NOT_CONFIGURED", f"no address for the {service} service is configured")


class IdentityClient:
    def __init__(self, address: str, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self._address = address
        self._channel = instrument_channel(grpc.insecure_channel(address or "127.0.0.1:9"))
        self._stub = identity_service_pb2_grpc.IdentityServiceStub(self._channel)
        self._deadline_s = deadline_s

    def resolve(self, refs: Sequence[AccountRef]) -> list[Resolved]:
        if not refs:
            return []
        _require(self._address, "identity")
        request = identity_service_pb2.BatchResolveAccountsRequest()
        add = request.refs.add
        for ref in refs:
            if ref.account_number:
                add(account_number=ref.account_number)
            else:
                request.refs.append(_ref(ref))
        try:
            response = self._stub.BatchResolveAccounts(request, timeout=self._deadline_s)
        except grpc.RpcError as error:
            raise Unavailable("IDENTITY_UNAVAILABLE", f"identity service: {error.code().name}") from None
        closed = identity_service_pb2.ACCOUNT_STATE_CLOSED
        return [Resolved(a.account_number if a.found else "", a.state == closed) for a in response.accounts]

    def check_consents(self, questions: Sequence[ConsentQuestion]) -> list[ConsentAnswer]:
        """One CheckConsentColumns call: the questions and answers travel as columns, no message per question."""
        if not questions:
            return []
        _require(self._address, "identity")
        instants: dict[datetime, int] = {}
        categories: dict[str, int] = {}
        for q in questions:
            if q.at not in instants:
                instants[q.at] = to_unix_us(q.at)
            if q.category not in categories:
                categories[q.category] = common_pb2.DataCategory.Value(f"DATA_CATEGORY_{q.category}")
        request = identity_service_pb2.CheckConsentColumnsRequest(
            account_numbers=[q.account_number for q in questions],
            categories=[categories[q.category] for q in questions],  # type: ignore[misc]
            at_us=[instants[q.at] for q in questions],
        )
        try:
            response = self._stub.CheckConsentColumns(request, timeout=self._deadline_s)
        except grpc.RpcError as error:
            raise Unavailable("IDENTITY_UNAVAILABLE", f"identity service: {error.code().name}") from None
        if len(response.allowed) != len(questions) or len(response.reasons) != len(questions):
            raise Unavailable("IDENTITY_BAD_ANSWER", f"identity answered {len(response.allowed)} of {len(questions)}")
        return list(map(ConsentAnswer, response.allowed, response.reasons))

    def close(self) -> None:
        self._channel.close()


class LedgerClient:
    def __init__(self, address: str, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self._address = address
        self._channel = instrument_channel(grpc.insecure_channel(address or "127.0.0.1:9"))
        self._stub = ledger_service_pb2_grpc.LedgerServiceStub(self._channel)
        self._deadline_s = deadline_s

    def credit(self, credits: Sequence[EarnCredit]) -> list[CreditResult]:
        """One PostCredits call: debit system:issuance, credit each account (code EARN); results in `credits` order.

        Sent as columns, one group per metadata mapping (credits of one partner, behaviour and rule share one
        mapping object, see records.credits): no message per credit is built here or parsed by the ledger.
        """
        if not credits:
            return []
        _require(self._address, "ledger")
        request = ledger_service_pb2.PostCreditsRequest()
        groups: dict[int, tuple[ledger_service_pb2.CreditGroup, list[int]]] = {}  # by id(): credits hold them alive
        instants: dict[datetime, int] = {}
        for position, c in enumerate(credits):
            found = groups.get(id(c.metadata))
            if found is None:
                group = request.groups.add(debit_account=ISSUANCE_ACCOUNT, code=_EARN, metadata=c.metadata)
                found = groups[id(c.metadata)] = (group, [])
            found[1].append(position)
        for group, positions in groups.values():
            chosen = [credits[p] for p in positions]
            earned = []
            for c in chosen:
                instant = instants.get(c.earned_at)
                if instant is None:
                    instant = instants[c.earned_at] = to_unix_us(c.earned_at)
                earned.append(instant)
            group.transfer_ids.extend([c.transfer_id for c in chosen])
            group.credit_accounts.extend([c.account_number for c in chosen])
            group.amount_points.extend([c.points for c in chosen])
            group.earned_at_us.extend(earned)
            group.references.extend([c.reference for c in chosen])
            group.co2e_grams.extend([c.co2e_grams for c in chosen])
        try:
            response = self._stub.PostCredits(request, timeout=self._deadline_s)
        except grpc.RpcError as error:
            raise Unavailable("LEDGER_UNAVAILABLE", f"ledger service: {error.code().name}") from None
        order = [p for _group, positions in groups.values() for p in positions]
        if len(response.statuses) != len(order):
            raise Unavailable("LEDGER_BAD_ANSWER", f"ledger answered {len(response.statuses)} of {len(order)} credits")
        failures = {f.index: f for f in response.failures}
        results: list[CreditResult] = [_UNSET] * len(credits)
        for index, (position, status) in enumerate(zip(order, response.statuses, strict=True)):
            failure = failures.get(index)
            if failure is None and status in _CREDITED:
                results[position] = CreditResult(credits[position].transfer_id, True, "", "")
            else:
                reason, message = (failure.reason, failure.message) if failure else ("UNKNOWN", f"status {status}")
                results[position] = CreditResult(credits[position].transfer_id, False, reason, message)
        return results

    def close(self) -> None:
        self._channel.close()
