"""The regional services served on the gateway: every public method of identity, ingest, ledger, rewards and
incentives, each
call admitted for the caller, routed to one region and passed through unchanged both ways.

One mechanism for every method, driven by ROUTES (per method: the region's service, its messages, and the account
field that routes it, or none: then the caller names the region in metadata x-carbon-region). Adding a method is one
line. The request's bytes go to the region as they came (a request is parsed only to read its account field) and the
region's answer comes back as it left (but ListCharityProjects, whose units_national the gateway fills in: see
`completions`): the response bytes, its metadata, and on failure its code, message and every
trailing metadata entry, grpc-status-details-bin (the ErrorInfo with the region's domain) included. Only a region
that does not answer at all is the gateway's own UNAVAILABLE REGION_UNAVAILABLE, for that region only.

A client stream (StreamEvents) is relayed message by message: the gateway reads the next batch from the caller only
once the region's side has taken the previous one, so a slow region slows the feed instead of filling the gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.incentives.v1 import incentives_service_pb2 as incentives
from carbon.ingest.v1 import ingest_service_pb2 as ingest
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway.clients import RegionClients, acting_for, deadline_s
from gateway.domain.callers import Caller
from gateway.service.admission import Admission
from gateway.service.known_accounts import KnownAccounts
from service_kit import telemetry, tls, validation
from service_kit.access import CALLER_METADATA_KEY, CALLER_PLATFORM_METADATA_KEY
from service_kit.errors import (
    BadRequest,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from service_kit.identities import TOKEN_METADATA_KEY

# The regional services the gateway forwards to, by the name the registry gives their addresses.
SERVICE_NAMES = {
    "identity": identity.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    "ingest": ingest.DESCRIPTOR.services_by_name["IngestService"].full_name,
    "ledger": ledger.DESCRIPTOR.services_by_name["LedgerService"].full_name,
    "rewards": rewards.DESCRIPTOR.services_by_name["RewardsService"].full_name,
    "incentives": incentives.DESCRIPTOR.services_by_name["IncentivesService"].full_name,
}

# The metadata entry naming the region of a call whose request names no account (documented in gateway_service.proto).
REGION_KEY = "x-carbon-region"
# Metadata of the caller's that stays at the gateway: its credentials, what only the gateway asserts to the region
# (its own service identity, the external caller it acts for), and what gRPC sets per hop. Trace context stays too
# when the gateway traces: its own span then carries it on.
_STAYS = frozenset(
    {"authorization", CALLER_METADATA_KEY, CALLER_PLATFORM_METADATA_KEY, TOKEN_METADATA_KEY, "user-agent"}
)
_TRACE_KEYS = frozenset({"traceparent", "tracestate", "baggage"})


@dataclass(frozen=True)
class Route:
    service: str  # which of the region's services: identity, ingest, ledger, rewards or incentives
    method: str
    request: type[Message]
    response: type[Message]
    account_field: str = ""  # the request field naming the account whose home region answers; "": x-carbon-region
    account_optional: bool = False  # the field may be unset (a oneof): then x-carbon-region routes
    operator_only_fields: tuple[str, ...] = ()  # set in a request, these make the method the national operator's
    client_streaming: bool = False

    @property
    def reads_unknown_accounts_as_empty(self) -> bool:
        """The ledger and rewards keep no row for an account that has not moved points, so they cannot tell it from
        a number never issued: the gateway asks identity first (KnownAccounts). Identity's own methods answer
        UNKNOWN_ACCOUNT themselves."""
        return bool(self.account_field) and self.service in ("ledger", "rewards")

    @property
    def path(self) -> str:
        """The method's gRPC path, the same on the gateway as in the region."""
        return f"/{SERVICE_NAMES[self.service]}/{self.method}"


def _routes() -> tuple[Route, ...]:
    i, g, le, r = identity, ingest, ledger, rewards
    return (
        Route("identity", "OpenAccount", i.OpenAccountRequest, i.OpenAccountResponse),
        Route("identity", "GetAccount", i.GetAccountRequest, i.GetAccountResponse, "account_number"),
        Route(
            "identity",
            "ResolveAccount",
            i.ResolveAccountRequest,
            i.ResolveAccountResponse,
            "account_number",
            account_optional=True,
            operator_only_fields=("id_number",),
        ),
        Route("identity", "ListBindings", i.ListBindingsRequest, i.ListBindingsResponse, "account_number"),
        Route(
            "identity",
            "IssueResidentAuthorization",
            i.IssueResidentAuthorizationRequest,
            i.IssueResidentAuthorizationResponse,
            "account_number",
        ),
        Route("identity", "GrantConsent", i.GrantConsentRequest, i.GrantConsentResponse, "account_number"),
        Route("identity", "RevokeConsent", i.RevokeConsentRequest, i.RevokeConsentResponse, "account_number"),
        Route("identity", "ListConsents", i.ListConsentsRequest, i.ListConsentsResponse, "account_number"),
        Route("identity", "CloseAccount", i.CloseAccountRequest, i.CloseAccountResponse, "account_number"),
        Route(
            "identity",
            "SetReminderPreference",
            i.SetReminderPreferenceRequest,
            i.SetReminderPreferenceResponse,
            "account_number",
        ),
        Route(
            "identity",
            "CorrectRealNameRecord",
            i.CorrectRealNameRecordRequest,
            i.CorrectRealNameRecordResponse,
            "account_number",
        ),
        Route("ingest", "SubmitEvents", g.SubmitEventsRequest, g.SubmitEventsResponse),
        Route("ingest", "StreamEvents", g.StreamEventsRequest, g.StreamEventsResponse, client_streaming=True),
        Route("ingest", "ExplainScore", g.ExplainScoreRequest, g.ExplainScoreResponse),
        Route("ingest", "ListBehaviours", g.ListBehavioursRequest, g.ListBehavioursResponse),
        Route("ingest", "ListRuleVersions", g.ListRuleVersionsRequest, g.ListRuleVersionsResponse),
        Route("ledger", "GetBalance", le.GetBalanceRequest, le.GetBalanceResponse, "account"),
        Route(
            "ledger", "ListStatementEntries", le.ListStatementEntriesRequest, le.ListStatementEntriesResponse, "account"
        ),
        Route("ledger", "ListLots", le.ListLotsRequest, le.ListLotsResponse, "account"),
        Route("ledger", "ListExpiringPoints", le.ListExpiringPointsRequest, le.ListExpiringPointsResponse, "account"),
        Route("ledger", "GetMonthlySummary", le.GetMonthlySummaryRequest, le.GetMonthlySummaryResponse, "account"),
        Route("rewards", "ListRewards", r.ListRewardsRequest, r.ListRewardsResponse),
        Route("rewards", "GetReward", r.GetRewardRequest, r.GetRewardResponse),
        Route("rewards", "Redeem", r.RedeemRequest, r.RedeemResponse, "account_number"),
        Route("rewards", "GetRedemption", r.GetRedemptionRequest, r.GetRedemptionResponse),
        Route("rewards", "ListVouchers", r.ListVouchersRequest, r.ListVouchersResponse, "account_number"),
        Route("rewards", "UseVoucher", r.UseVoucherRequest, r.UseVoucherResponse),
        Route("rewards", "CancelVoucher", r.CancelVoucherRequest, r.CancelVoucherResponse),
        Route("rewards", "ListCharityProjects", r.ListCharityProjectsRequest, r.ListCharityProjectsResponse),
        Route("rewards", "Donate", r.DonateRequest, r.DonateResponse, "account_number"),
        Route("rewards", "RecommendRewards", r.RecommendRewardsRequest, r.RecommendRewardsResponse, "account_number"),
        *_incentive_routes(),
    )


def _incentive_routes() -> tuple[Route, ...]:
    """A resident's offers, their reasons, accepting one, the personalisation switch and the profile: routed by the
    resident's account (campaigns are the ops API's, in the region itself)."""
    n = incentives
    return (
        Route("incentives", "ListOffers", n.ListOffersRequest, n.ListOffersResponse, "account_number"),
        Route("incentives", "ExplainOffer", n.ExplainOfferRequest, n.ExplainOfferResponse, "account_number"),
        Route("incentives", "AcceptOffer", n.AcceptOfferRequest, n.AcceptOfferResponse, "account_number"),
        Route(
            "incentives",
            "SetPersonalisation",
            n.SetPersonalisationRequest,
            n.SetPersonalisationResponse,
            "account_number",
        ),
        Route("incentives", "GetProfile", n.GetProfileRequest, n.GetProfileResponse, "account_number"),
    )


ROUTES = _routes()

_LEDGER_NOT_SERVED = (
    *("PostTransfers", "PostCredits", "GetTransfer", "RefundTransfer", "Hold", "CommitHold", "ReleaseHold"),
    *("GetHold", "SweepExpiredHolds", "ExpirePoints", "VerifyJournal", "CheckConservation", "ListJobRuns"),
    *("GetPeriodFigures", "GetExpiringAhead"),
    *("StartJobRun", "HoldBatch", "CommitHolds", "ReleaseHolds"),
)
# What the gateway deliberately does not serve, and why: a region's internal calls between its own services
# (identity for ingest and the gateway, holds for rewards and the gateway's sagas), the ledger's postings and
# operations, administration (partners, rules, statistics, the rewards catalog), which the ops API does in the
# region itself, and a region's figures, which the gateway gathers itself (GatewayService.GetNationalFigures).
# A call to one is UNIMPLEMENTED METHOD_NOT_SERVED_BY_GATEWAY; reflection does not list it.
NOT_SERVED = frozenset(
    {
        *(
            f"{SERVICE_NAMES['identity']}/{name}"
            for name in (
                "BatchResolveAccounts",
                "FindAccountsByPersonKey",
                "CheckConsents",
                "CheckConsentColumns",
                "GetAccountFigures",
                "BatchGetAccounts",
                *("QueueReminders", "ListReminderDeliveries", "RetryReminderDelivery"),
                # The gateway's own question (CheckGuardian, ADR 0209); the hand-over job's runs, for the ops API.
                *("GetGuardianStanding", "ListJobRuns"),
            )
        ),
        *(
            f"{SERVICE_NAMES['ingest']}/{name}"
            for name in (
                "CreateRuleVersion",
                "RegisterPartner",
                "GetPartner",
                "ListPartners",
                "RotatePartnerSecret",
                "UpdatePartnerBehaviours",
                "GetStatistics",
                "ListAcceptedEvents",
                "ListAccountEvents",
            )
        ),
        *(f"{SERVICE_NAMES['ledger']}/{name}" for name in _LEDGER_NOT_SERVED),
        *(
            f"{SERVICE_NAMES['rewards']}/{name}"
            for name in ("CreateReward", "UpdateReward", "RetireReward", "GetCharityFigures")
        ),
        *(f"{SERVICE_NAMES['incentives']}/{name}" for name in ("CreateCampaign", "ListCampaigns")),
    }
)
# The proto files of the regional services, for the gateway's reflection.
ROUTE_FILES = (identity.DESCRIPTOR, ingest.DESCRIPTOR, ledger.DESCRIPTOR, rewards.DESCRIPTOR, incentives.DESCRIPTOR)


class NotServed(DomainError):
    """A method the gateway deliberately does not serve (internal to a region, or administration)."""

    code = grpc.StatusCode.UNIMPLEMENTED


# What the gateway adds to a region's answer, by method path: (answering region, answer, seconds left) -> answer.
Completion = Callable[[str, bytes, float], bytes]


class Forwarder:
    def __init__(
        self,
        clients: RegionClients,
        admission: Admission,
        default_timeout_s: float,
        completions: Mapping[str, Completion] | None = None,
        known_accounts: KnownAccounts | None = None,
    ) -> None:
        self.clients = clients
        self.admission = admission
        self.default_timeout_s = default_timeout_s  # for a unary call that arrives without a deadline
        # The few answers the gateway completes with what only it knows (units_national): parsed, not passed through.
        self.completions = dict(completions or {})
        self.known_accounts = known_accounts or KnownAccounts(clients)

    def unary(self, route: Route, request: bytes, context: grpc.ServicerContext) -> bytes:
        """The home region's answer to one request, for a caller allowed this method in that region."""
        metadata = list(context.invocation_metadata() or [])
        caller = self.admission.admit(metadata, tls.peer_common_name(context), route.path)
        region, account = self._region(route, caller, request, metadata)
        remaining = context.time_remaining()
        timeout_s = self.default_timeout_s if remaining is None else remaining
        if account and route.reads_unknown_accounts_as_empty:
            self._require_known(route, region, account, request, timeout_s)
        method = self.clients.channel(region, route.service).unary_unary(route.path, None, None)
        try:
            response, call = method.with_call(request, timeout=timeout_s, metadata=outbound(metadata, caller))
        except grpc.RpcError as error:
            pass_through_error(context, region, error)
            raise  # pass_through_error always aborts or raises
        _send_back(context, call)
        complete = self.completions.get(route.path)
        if complete is not None:
            return complete(region, bytes(response), deadline_s(context.time_remaining(), self.default_timeout_s))
        return bytes(response)

    def _require_known(self, route: Route, region: str, account: str, request: bytes, timeout_s: float) -> None:
        """NOT_FOUND for an account no region issued, unless the request is malformed as well: bad input is
        INVALID_ARGUMENT first, as the region would have answered (the kit's checks, run only on this rare path)."""
        try:
            self.known_accounts.require(region, account, route.account_field, timeout_s)
        except NotFound:
            found = validation.violations(route.request.FromString(request))
            if found:
                raise BadRequest(found) from None
            raise

    def client_stream(self, route: Route, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        """The home region's answer to a client stream, relayed one message at a time."""
        metadata = list(context.invocation_metadata() or [])
        caller = self.admission.admit(metadata, tls.peer_common_name(context), route.path)
        region, _ = self._region(route, caller, b"", metadata)
        method = self.clients.channel(region, route.service).stream_unary(route.path, None, None)
        future = method.future(iter(requests), timeout=context.time_remaining(), metadata=outbound(metadata, caller))
        context.add_callback(future.cancel)  # the caller went away: so does the region's call
        try:
            response = future.result()
        except grpc.RpcError as error:
            pass_through_error(context, region, error)
            raise
        _send_back(context, future)
        return bytes(response)

    def _region(
        self, route: Route, caller: Caller, request: bytes, metadata: Sequence[tuple[str, Any]]
    ) -> tuple[str, str]:
        """The region that answers (the account field's home region, else the caller's x-carbon-region) and the
        account the request names ("" for none)."""
        named = next((str(value) for key, value in metadata if key == REGION_KEY), "")
        account = ""
        if route.account_field or route.operator_only_fields:
            try:
                parsed = route.request.FromString(request)
            except DecodeError:
                raise InvalidArgument("request", f"is not a {route.request.DESCRIPTOR.full_name}") from None
            for field in route.operator_only_fields:
                if parsed.HasField(field) and not caller.operator:
                    raise PermissionDenied(
                        "LOOKUP_NOT_ALLOWED_FOR_CALLER",
                        f"{field}: only the national operator may look accounts up this way",
                        {"field": field, "caller": caller.caller_id},
                    )
            account = str(getattr(parsed, route.account_field)) if route.account_field else ""
        if account or (route.account_field and not route.account_optional):
            region = self.clients.registry.route(account, route.account_field).region_code
            if named and named != region:
                raise InvalidArgument(
                    REGION_KEY, f"names region {named} but the account's region is {region}", "REGION_MISMATCH"
                )
            caller.require_region(region, route.account_field)
            return region, account
        if not named:
            raise InvalidArgument(REGION_KEY, "metadata x-carbon-region must name the region (6 digits) to call")
        if named not in self.clients.registry.regions:
            raise FailedPrecondition(
                "REGION_NOT_FEDERATED", f"region {named} is not federated here", {"region": named, "field": REGION_KEY}
            )
        caller.require_region(named, REGION_KEY)
        return named, ""


def outbound(metadata: Sequence[tuple[str, Any]], caller: Caller) -> tuple[tuple[str, str | bytes], ...]:
    """What the region receives: the caller's own metadata (request ids, trace context, ...) and who the caller is."""
    stays = _STAYS | _TRACE_KEYS if telemetry.enabled() else _STAYS
    kept = [(key, value) for key, value in metadata if key not in stays and not key.startswith((":", "grpc-"))]
    return (*kept, *acting_for(caller.caller_id, caller.platform))


def _passable(metadata: Any) -> tuple[tuple[str, str | bytes], ...]:
    """Metadata a server may set itself: gRPC's own keys are the transport's, except the status details."""
    return tuple(
        (str(key), value)
        for key, value in (metadata or ())
        if not key.startswith((":", "grpc-")) or key == "grpc-status-details-bin"
    )


def _send_back(context: grpc.ServicerContext, call: Any) -> None:
    initial = _passable(call.initial_metadata())
    if initial:
        context.send_initial_metadata(initial)
    trailing = _passable(call.trailing_metadata())
    if trailing:
        context.set_trailing_metadata(trailing)


@dataclass(frozen=True)
class _Status(grpc.Status):  # type: ignore[misc]
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, Any], ...]


def pass_through_error(context: grpc.ServicerContext, region: str, error: grpc.RpcError) -> None:
    """Ends the call with the region's status as it came; a region that did not answer at all is the gateway's
    REGION_UNAVAILABLE (the region named), since there is nothing of the region's to pass on."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    trailing = _passable(error.trailing_metadata())  # type: ignore[attr-defined]
    answered = any(key == "grpc-status-details-bin" for key, _ in trailing)
    if code is grpc.StatusCode.UNAVAILABLE and not answered:
        raise Unavailable("REGION_UNAVAILABLE", f"region {region} did not answer", {"region": region})
    context.abort_with_status(_Status(code, error.details() or "", tuple(trailing)))  # type: ignore[attr-defined]
