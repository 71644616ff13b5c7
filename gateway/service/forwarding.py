"""The regional services served on the gateway: each call is authorised for the account's home region and forwarded
there with the caller's deadline minus a margin.

One mechanism for every method, driven by ROUTES (per method: the region's service, its messages, the account field
that routes it); server.py serves every method the table lists. Adding a method is one line here. A region that does not
answer is UNAVAILABLE (REGION_UNAVAILABLE) for its accounts only; its refusals pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway.clients import RegionClients, RemoteError, acting_for, call, deadline_s
from gateway.domain.callers import Caller, Role
from gateway.domain.transfers import Timing
from service_kit.errors import DomainError

# The regional services the gateway forwards to, by the name the registry gives their addresses.
SERVICE_NAMES = {
    "identity": identity.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    "ledger": ledger.DESCRIPTOR.services_by_name["LedgerService"].full_name,
    "rewards": rewards.DESCRIPTOR.services_by_name["RewardsService"].full_name,
}


@dataclass(frozen=True)
class Route:
    service: str  # which of the region's services: identity, ledger or rewards
    method: str
    request: type[Message]
    response: type[Message]
    account_field: str  # the request field holding the account number whose home region answers

    @property
    def path(self) -> str:
        """The method's gRPC path, the same on the gateway as in the region."""
        return f"/{SERVICE_NAMES[self.service]}/{self.method}"


ROUTES = (
    Route("ledger", "GetBalance", ledger.GetBalanceRequest, ledger.GetBalanceResponse, "account"),
    Route(
        "ledger",
        "ListStatementEntries",
        ledger.ListStatementEntriesRequest,
        ledger.ListStatementEntriesResponse,
        "account",
    ),
    Route("ledger", "ListLots", ledger.ListLotsRequest, ledger.ListLotsResponse, "account"),
    Route(
        "ledger", "ListExpiringPoints", ledger.ListExpiringPointsRequest, ledger.ListExpiringPointsResponse, "account"
    ),
    Route("identity", "GetAccount", identity.GetAccountRequest, identity.GetAccountResponse, "account_number"),
    Route("rewards", "ListVouchers", rewards.ListVouchersRequest, rewards.ListVouchersResponse, "account_number"),
    Route("rewards", "Redeem", rewards.RedeemRequest, rewards.RedeemResponse, "account_number"),
)


class Refused(DomainError):
    """The home region's own refusal, passed through with its code, reason and metadata."""

    def __init__(self, error: RemoteError) -> None:
        super().__init__(error.reason or error.code.name, error.message, error.metadata)
        self.code = error.code


def forwarded_for(caller: Caller) -> tuple[tuple[str, str], ...]:
    """Who the region is told the call is for: the caller's id, and for a channel platform that platform too."""
    return acting_for(caller.caller_id, caller.caller_id if caller.role is Role.PLATFORM else "")


class Forwarder:
    def __init__(self, clients: RegionClients, timing: Timing) -> None:
        self.clients = clients
        self.timing = timing

    def forward(self, route: Route, request: Message, caller: Caller, time_remaining_s: float | None) -> Message:
        """The home region's answer to `request`, for a caller allowed to act for the account's region."""
        account = str(getattr(request, route.account_field))
        region = self.clients.registry.route(account, route.account_field).region_code
        caller.require_region(region, route.account_field)
        timeout_s = deadline_s(
            time_remaining_s, self.timing.call_timeout.total_seconds(), self.timing.margin.total_seconds()
        )
        stub = self.clients.channel(region, route.service).unary_unary(
            route.path,
            request_serializer=route.request.SerializeToString,
            response_deserializer=route.response.FromString,
        )
        try:
            response: Message = call(region, stub, request, timeout_s, forwarded_for(caller))
        except RemoteError as error:
            raise Refused(error) if error.final else error.as_unavailable() from None
        return response
