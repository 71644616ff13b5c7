"""The regional services served on the gateway: every public method of identity, ingest, ledger and rewards, each
call admitted for the caller, routed to one region and passed through unchanged both ways.

One mechanism for every method, driven by ROUTES (per method: the region's service, its messages, and the account
field that routes it, or none: then the caller names the region in metadata x-carbon-region). Adding a method is one
line. The request's bytes go to the region as they came (a request is parsed only to read its account field) and the
region's answer comes back as it left: the response bytes, its metadata, and on failure its code, message and every
trailing metadata entry, grpc-status-details-bin (the ErrorInfo with the region's domain) included. Only a region
that does not answer at all is the gateway's own UNAVAILABLE REGION_UNAVAILABLE, for that region only.

A client stream (StreamEvents) is relayed message by message: the gateway reads the next batch from the caller only
once the region's side has taken the previous one, so a slow region slows the feed instead of filling the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.ingest.v1 import ingest_service_pb2 as ingest
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway.clients import RegionClients, acting_for
from gateway.domain.callers import Caller
from gateway.service.admission import Admission
from service_kit import telemetry, tls
from service_kit.access import CALLER_METADATA_KEY, CALLER_PLATFORM_METADATA_KEY
from service_kit.errors import DomainError, FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable
from service_kit.identities import TOKEN_METADATA_KEY

# The regional services the gateway forwards to, by the name the registry gives their addresses.
SERVICE_NAMES = {
    "identity": identity.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    "ingest": ingest.DESCRIPTOR.services_by_name["IngestService"].full_name,
    "ledger": ledger.DESCRIPTOR.services_by_name["LedgerService"].full_name,
    "rewards": rewards.DESCRIPTOR.services_by_name["RewardsService"].full_name,
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
    service: str  # which of the region's services: identity, ingest, ledger or rewards
    method: str
    request: type[Message]
    response: type[Message]
    account_field: str = ""  # the request field naming the account whose home region answers; "": x-carbon-region
    account_optional: bool = False  # the field may be unset (a oneof): then x-carbon-region routes
    operator_only_fields: tuple[str, ...] = ()  # set in a request, these make the method the national operator's
    client_streaming: bool = False

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
    )


ROUTES = _routes()

_LEDGER_NOT_SERVED = (
    *("PostTransfers", "PostCredits", "GetTransfer", "RefundTransfer", "Hold", "CommitHold", "ReleaseHold"),
    *("GetHold", "SweepExpiredHolds", "ExpirePoints", "VerifyJournal", "CheckConservation", "ListJobRuns"),
)
# What the gateway deliberately does not serve, and why: a region's internal calls between its own services
# (identity for ingest and the gateway, holds for rewards and the gateway's sagas), the ledger's postings and
# operations, and administration (partners, rules, statistics, the rewards catalog), which the ops API does in the
# region itself.
# A call to one is UNIMPLEMENTED METHOD_NOT_SERVED_BY_GATEWAY; reflection does not list it.
NOT_SERVED = frozenset(
    {
        *(
            f"{SERVICE_NAMES['identity']}/{name}"
            for name in ("BatchResolveAccounts", "FindAccountsByPersonKey", "CheckConsents", "CheckConsentColumns")
        ),
        *(
            f"{SERVICE_NAMES['ingest']}/{name}"
            for name in (
                "CreateRuleVersion",
                "RegisterPartner",
                "GetPartner",
                "ListPartners",
                "RotatePartnerSecret",
                "GetStatistics",
                "ListAccountEvents",
            )
        ),
        *(f"{SERVICE_NAMES['ledger']}/{name}" for name in _LEDGER_NOT_SERVED),
        *(f"{SERVICE_NAMES['rewards']}/{name}" for name in ("CreateReward", "UpdateReward", "RetireReward")),
    }
)
# The proto files of the regional services, for the gateway's reflection.
ROUTE_FILES = (identity.DESCRIPTOR, ingest.DESCRIPTOR, ledger.DESCRIPTOR, rewards.DESCRIPTOR)


class NotServed(DomainError):
    """A method the gateway deliberately does not serve (internal to a region, or administration)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Forwarder:
    def __init__(self, clients: RegionClients, admission: Admission, default_timeout_s: float) -> None:
        self.clients = clients
        self.admission = admission
        self.default_timeout_s = default_timeout_s  # for a unary call that arrives without a deadline

    def unary(self, route: Route, request: bytes, context: grpc.ServicerContext) -> bytes:
        """The home region's answer to one request, for a caller allowed this method in that region."""
        metadata = list(context.invocation_metadata() or [])
        caller = self.admission.admit(metadata, tls.peer_common_name(context), route.path)
        region = self._region(route, caller, request, metadata)
        remaining = context.time_remaining()
        timeout_s = self.default_timeout_s if remaining is None else remaining
        method = self.clients.channel(region, route.service).unary_unary(route.path, None, None)
        try:
            response, call = method.with_call(request, timeout=timeout_s, metadata=outbound(metadata, caller))
        except grpc.RpcError as error:
            pass_through_error(context, region, error)
            raise  # pass_through_error always aborts or raises
        _send_back(context, call)
        return bytes(response)

    def client_stream(self, route: Route, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        """The home region's answer to a client stream, relayed one message at a time."""
        metadata = list(context.invocation_metadata() or [])
        caller = self.admission.admit(metadata, tls.peer_common_name(context), route.path)
        region = self._region(route, caller, b"", metadata)
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

    def _region(self, route: Route, caller: Caller, request: bytes, metadata: Sequence[tuple[str, Any]]) -> str:
        """The region that answers: the account field's home region, else the caller's x-carbon-region."""
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
            return region
        if not named:
            raise InvalidArgument(REGION_KEY, "metadata x-carbon-region must name the region (6 digits) to call")
        if named not in self.clients.registry.regions:
            raise FailedPrecondition(
                "REGION_NOT_FEDERATED", f"region {named} is not federated here", {"region": named, "field": REGION_KEY}
            )
        caller.require_region(named, REGION_KEY)
        return named


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
