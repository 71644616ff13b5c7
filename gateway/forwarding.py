"""The regional services served on the gateway: each call is authenticated, authorised for the account's home region
and forwarded there with the caller's deadline minus a margin.

One mechanism for every method: ROUTES says which account field routes it. Adding a method is one line here. A region
that does not answer is UNAVAILABLE (REGION_UNAVAILABLE) for its accounts only; its refusals pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway.clients import RegionClients, RemoteError, call, deadline_s
from gateway.domain import Timing
from gateway.front_door import FrontDoor
from service_kit.errors import DomainError


@dataclass(frozen=True)
class Route:
    service: str  # which of the region's services: identity, ledger or rewards
    request: type[Message]
    response: type[Message]
    account_field: str


def _routes() -> dict[str, Route]:
    ledger_name = ledger.DESCRIPTOR.services_by_name["LedgerService"].full_name
    identity_name = identity.DESCRIPTOR.services_by_name["IdentityService"].full_name
    rewards_name = rewards.DESCRIPTOR.services_by_name["RewardsService"].full_name
    return {
        f"/{ledger_name}/GetBalance": Route("ledger", ledger.GetBalanceRequest, ledger.GetBalanceResponse, "account"),
        f"/{ledger_name}/ListStatementEntries": Route(
            "ledger", ledger.ListStatementEntriesRequest, ledger.ListStatementEntriesResponse, "account"
        ),
        f"/{ledger_name}/ListLots": Route("ledger", ledger.ListLotsRequest, ledger.ListLotsResponse, "account"),
        f"/{ledger_name}/ListExpiringPoints": Route(
            "ledger", ledger.ListExpiringPointsRequest, ledger.ListExpiringPointsResponse, "account"
        ),
        f"/{identity_name}/GetAccount": Route(
            "identity", identity.GetAccountRequest, identity.GetAccountResponse, "account_number"
        ),
        f"/{rewards_name}/ListVouchers": Route(
            "rewards", rewards.ListVouchersRequest, rewards.ListVouchersResponse, "account_number"
        ),
        f"/{rewards_name}/Redeem": Route("rewards", rewards.RedeemRequest, rewards.RedeemResponse, "account_number"),
    }


ROUTES = _routes()


class Refused(DomainError):
    """The home region's own refusal, passed through with its code, reason and metadata."""

    def __init__(self, error: RemoteError) -> None:
        super().__init__(error.reason or error.code.name, error.message, error.metadata)
        self.code = error.code


class Forwarder:
    def __init__(self, front_door: FrontDoor, clients: RegionClients, timing: Timing) -> None:
        self.front_door = front_door
        self.clients = clients
        self.timing = timing

    def forward(self, method: str, route: Route, request: Any, context: grpc.ServicerContext) -> Message:
        caller = self.front_door.caller(context)
        account = str(getattr(request, route.account_field))
        region = self.clients.registry.route(account, route.account_field).region_code
        caller.require_region(region, route.account_field)
        timeout_s = deadline_s(context, self.timing.call_timeout.total_seconds(), self.timing.margin.total_seconds())
        stub = self.clients.channel(region, route.service).unary_unary(
            method, request_serializer=route.request.SerializeToString, response_deserializer=route.response.FromString
        )
        try:
            response: Message = call(region, stub, request, timeout_s)
        except RemoteError as error:
            raise Refused(error) if error.final else error.as_unavailable() from None
        return response


def forwarding_handlers(
    front_door: FrontDoor, clients: RegionClients, timing: Timing
) -> Mapping[str, grpc.GenericRpcHandler[Any, Any]]:
    """One generic handler per regional service name, serving the methods ROUTES lists for it."""
    forwarder = Forwarder(front_door, clients, timing)
    per_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
    for method, route in ROUTES.items():
        service, name = method.removeprefix("/").split("/")
        per_service.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(
            _behaviour(forwarder, method, route),
            request_deserializer=route.request.FromString,
            response_serializer=route.response.SerializeToString,
        )
    return {
        service: grpc.method_handlers_generic_handler(service, handlers) for service, handlers in per_service.items()
    }


def _behaviour(forwarder: Forwarder, method: str, route: Route) -> Callable[[Any, grpc.ServicerContext], Message]:
    return lambda request, context: forwarder.forward(method, route, request, context)


def add_generic_handler(handler: grpc.GenericRpcHandler[Any, Any], server: grpc.Server) -> None:
    server.add_generic_rpc_handlers((handler,))
