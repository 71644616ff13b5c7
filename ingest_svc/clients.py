"""Clients of the region's identity and ledger services and of the national gateway's activity claims: one batched
call each, always with a deadline, over channels from service_kit.channels.open_channel (created on first use,
reused)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import NamedTuple, cast

import grpc

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from ingest_svc.domain.events import AccountRef
from ingest_svc.domain.fingerprints import ActivityHolder
from service_kit.accounts import ISSUANCE_ACCOUNT
from service_kit.errors import Unavailable
from service_kit.peers import Peer
from service_kit.settings import Settings
from service_kit.wire import to_unix_us

DEFAULT_DEADLINE_S = 10.0
# Claims ahead of recording wait for their answers in these threads, as blocking calls: a gRPC future on a channel
# with no other call in flight starts a thread of its own to poll the channel, a thread per claim. More claims at once
# than threads wait their turn (the record transaction they overlap takes longer than a claim).
CLAIM_THREADS = 16
# The ledger's metadata map of a credit as (key, value) pairs: a value, so credits are grouped by it.
CreditMetadata = tuple[tuple[str, str], ...]


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
    metadata: CreditMetadata


class CreditResult(NamedTuple):
    transfer_id: str
    credited: bool  # POSTED or ALREADY_POSTED
    failure_reason: str
    failure_message: str


class ClaimColumns(NamedTuple):
    """A credit batch's claims as ClaimActivities carries them: one entry per claim in each column, in order."""

    fingerprints: list[bytes]
    key_ids: list[str]
    days: list[str]  # ISO CST days
    partner_ids: list[str]
    event_ids: list[str]


class ClaimAttempt(NamedTuple):
    """An attempt that claimed ahead of recording and never said it recorded, with its claims (ADR 0416)."""

    attempt_id: str
    fingerprints: list[bytes]
    days: list[str]


class ClaimAttempts(NamedTuple):
    attempts: list[ClaimAttempt]
    next_page_token: str  # "" when no more attempts are old enough now
    resume_page_token: str  # where a later listing continues after these


class ClaimAnswers(NamedTuple):
    holders: list[ActivityHolder | None]  # per claim: None when the claiming event holds the activity
    other_attempts: list[int]  # claimed ahead: positions the same event holds under another attempt (ADR 0415)


_EARN = ledger_service_pb2.TRANSFER_CODE_EARN
_CREDITED = frozenset({ledger_service_pb2.TRANSFER_STATUS_POSTED, ledger_service_pb2.TRANSFER_STATUS_ALREADY_POSTED})


class IdentityClient(Peer[identity_service_pb2_grpc.IdentityServiceStub]):
    def __init__(self, address: str, deadline_s: float = DEFAULT_DEADLINE_S, settings: Settings | None = None) -> None:
        super().__init__("identity", identity_service_pb2_grpc.IdentityServiceStub, address, deadline_s, settings)

    def resolve(self, refs: Sequence[AccountRef]) -> list[Resolved]:
        if not refs:
            return []
        request = identity_service_pb2.BatchResolveAccountsRequest()
        for ref in refs:
            request.refs.append(_ref(ref))
        try:
            response = self.stub().BatchResolveAccounts(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        closed = identity_service_pb2.ACCOUNT_STATE_CLOSED
        return [Resolved(a.account_number if a.found else "", a.state == closed) for a in response.accounts]

    def check_consents(self, questions: Sequence[ConsentQuestion]) -> list[ConsentAnswer]:
        """One CheckConsentColumns call: the questions and answers travel as columns, no message per question."""
        if not questions:
            return []
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
            response = self.stub().CheckConsentColumns(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        if len(response.allowed) != len(questions) or len(response.reasons) != len(questions):
            raise Unavailable("IDENTITY_BAD_ANSWER", f"identity answered {len(response.allowed)} of {len(questions)}")
        return list(map(ConsentAnswer, response.allowed, response.reasons))


class LedgerClient(Peer[ledger_service_pb2_grpc.LedgerServiceStub]):
    def __init__(self, address: str, deadline_s: float = DEFAULT_DEADLINE_S, settings: Settings | None = None) -> None:
        super().__init__("ledger", ledger_service_pb2_grpc.LedgerServiceStub, address, deadline_s, settings)

    def credit(self, credits: Sequence[EarnCredit]) -> list[CreditResult]:
        """One PostCredits call: debit system:issuance, credit each account (code EARN); results in `credits` order.

        Sent as columns, one group per distinct metadata: no message per credit is built here or parsed by the ledger.
        """
        if not credits:
            return []
        groups = _positions_by_metadata(credits)
        request = ledger_service_pb2.PostCreditsRequest()
        for metadata, positions in groups.items():
            _add_group(request, metadata, [credits[p] for p in positions])
        try:
            response = self.stub().PostCredits(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        order = [p for positions in groups.values() for p in positions]  # the credits in the request's order
        if len(response.statuses) != len(order):
            raise Unavailable("LEDGER_BAD_ANSWER", f"ledger answered {len(response.statuses)} of {len(order)} credits")
        failures = {f.index: f for f in response.failures}
        results: list[CreditResult | None] = [None] * len(credits)
        for index, (position, status) in enumerate(zip(order, response.statuses, strict=True)):
            transfer_id = credits[position].transfer_id
            failure = failures.get(index)
            if failure is None and status in _CREDITED:
                results[position] = CreditResult(transfer_id, True, "", "")
            else:
                reason, message = (failure.reason, failure.message) if failure else ("UNKNOWN", f"status {status}")
                results[position] = CreditResult(transfer_id, False, reason, message)
        return cast(list[CreditResult], results)


class GatewayClient(Peer[gateway_service_pb2_grpc.GatewayServiceStub]):
    def __init__(self, address: str, deadline_s: float = DEFAULT_DEADLINE_S, settings: Settings | None = None) -> None:
        super().__init__("gateway", gateway_service_pb2_grpc.GatewayServiceStub, address, deadline_s, settings)
        # Made on the first claim ahead and shut down by close(), like the channel: a client closed and used again
        # (the peer reopens its channel) gets a new pool, and a closed one leaves no idle threads behind.
        self._calls: ThreadPoolExecutor | None = None
        self._calls_lock = threading.Lock()

    def _claim_threads(self) -> ThreadPoolExecutor:
        with self._calls_lock:
            if self._calls is None:
                self._calls = ThreadPoolExecutor(CLAIM_THREADS, thread_name_prefix="gateway-claims")
            return self._calls

    def close(self) -> None:
        super().close()
        with self._calls_lock:
            calls, self._calls = self._calls, None
        if calls is not None:
            calls.shutdown(wait=False)

    def claim(self, claims: ClaimColumns, attempt_id: str = "", recorded: bool = False) -> ClaimAnswers:
        """One ClaimActivities call; per claim, in order: None when the claiming event holds the activity, else its
        holder. Any failure is UNAVAILABLE GATEWAY_UNAVAILABLE: the credit batch waits in the outbox."""
        return self.start_claim(claims, attempt_id, recorded)()

    def start_claim(
        self, claims: ClaimColumns, attempt_id: str = "", recorded: bool = False
    ) -> Callable[[], ClaimAnswers]:
        """Sends the ClaimActivities call and returns at once; the returned function waits for its answers (as
        `claim`'s), so the caller can do other work meanwhile (claims ahead of recording, docs/adr/0415)."""
        count = len(claims.fingerprints)
        if not count:
            return lambda: ClaimAnswers([], [])
        request = gateway_service_pb2.ClaimActivitiesRequest(
            fingerprints=claims.fingerprints,
            key_ids=claims.key_ids,
            occurred_days=claims.days,
            partner_ids=claims.partner_ids,
            event_ids=claims.event_ids,
            attempt_id=attempt_id,
            recorded=recorded,
        )
        call = self._claim_threads().submit(self.stub().ClaimActivities, request, timeout=self.deadline_s)

        def answers() -> ClaimAnswers:
            try:
                response = call.result()
            except grpc.RpcError as error:
                raise self.failed(error) from None
            if len(response.held) != count:
                raise Unavailable("GATEWAY_BAD_ANSWER", f"gateway answered {len(response.held)} of {count} claims")
            holders: list[ActivityHolder | None] = [None] * count
            for holder in response.holders:
                holders[holder.index] = ActivityHolder(holder.region_code, holder.partner_id, holder.event_id)
            return ClaimAnswers(holders, list(response.other_attempt_indexes))

        return answers

    def release(self, fingerprints: list[bytes], days: list[str], attempt_id: str) -> int:
        """Gives up claims made ahead of recording under `attempt_id` (only those still under it go); UNAVAILABLE
        GATEWAY_UNAVAILABLE when the gateway does not answer."""
        if not fingerprints:
            return 0
        request = gateway_service_pb2.ReleaseActivityClaimsRequest(
            fingerprints=fingerprints, occurred_days=days, attempt_id=attempt_id
        )
        try:
            return self.stub().ReleaseActivityClaims(request, timeout=self.deadline_s).released
        except grpc.RpcError as error:
            raise self.failed(error) from None

    def list_claim_attempts(self, min_age_s: int, page_token: str, page_size: int = 0) -> ClaimAttempts:
        """One page of this region's attempts that claimed ahead at least `min_age_s` ago and never said they
        recorded, oldest first; UNAVAILABLE GATEWAY_UNAVAILABLE when the gateway does not answer."""
        request = gateway_service_pb2.ListClaimAttemptsRequest(
            min_age_seconds=min_age_s, page_size=page_size, page_token=page_token
        )
        try:
            response = self.stub().ListClaimAttempts(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        attempts = [ClaimAttempt(a.attempt_id, list(a.fingerprints), list(a.occurred_days)) for a in response.attempts]
        return ClaimAttempts(attempts, response.next_page_token, response.resume_page_token)


def _ref(ref: AccountRef) -> common_pb2.AccountRef:
    if ref.account_number:
        return common_pb2.AccountRef(account_number=ref.account_number)
    if ref.phone_number:
        return common_pb2.AccountRef(phone_number=ref.phone_number)
    return common_pb2.AccountRef(
        binding=common_pb2.ChannelBinding(platform=ref.platform, platform_user_id=ref.platform_user_id)
    )


def _positions_by_metadata(credits: Sequence[EarnCredit]) -> dict[CreditMetadata, list[int]]:
    """The credits' positions grouped by their metadata, groups in order of first appearance."""
    groups: dict[CreditMetadata, list[int]] = {}
    for position, credit in enumerate(credits):
        positions = groups.get(credit.metadata)
        if positions is None:
            positions = groups[credit.metadata] = []
        positions.append(position)
    return groups


def _add_group(
    request: ledger_service_pb2.PostCreditsRequest, metadata: CreditMetadata, members: list[EarnCredit]
) -> None:
    """One CreditGroup: what its credits share once, the rest as parallel columns."""
    instants: dict[datetime, int] = {}
    earned = []
    for c in members:
        instant = instants.get(c.earned_at)
        if instant is None:
            instant = instants[c.earned_at] = to_unix_us(c.earned_at)
        earned.append(instant)
    group = request.groups.add(debit_account=ISSUANCE_ACCOUNT, code=_EARN, metadata=dict(metadata))
    group.transfer_ids.extend([c.transfer_id for c in members])
    group.credit_accounts.extend([c.account_number for c in members])
    group.amount_points.extend([c.points for c in members])
    group.earned_at_us.extend(earned)
    group.references.extend([c.reference for c in members])
    group.co2e_grams.extend([c.co2e_grams for c in members])
