"""Who may call what: the one table of gRPC methods and the service identities allowed to call them, the server
interceptor that authenticates and authorizes every call against it, and the verified caller of the running call.

A regional service answers only the callers the table names for the method: the gateway and the ops API by their
national IDs, the other services of its own region by kind (a ledger never answers another region's ingest).
Health checks and reflection are open; a method missing from the table is refused (fail closed). The national
gateway serves external callers, whom its own front door (gateway/domain/callers.py) authenticates: there the
interceptor only records the service identity a caller proved, if any. docs/access.md renders the table;
docs/adr/0011-service-identities-and-access-table.md gives the reasons.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from service_kit import identities
from service_kit.identities import GATEWAY, OPS_API, IdentityError, TokenInvalid, TokenVerifier
from service_kit.settings import Settings
from service_kit.status import status_for

log = logging.getLogger("carbon.access")

CALLER_METADATA_KEY = "x-carbon-caller"
CALLER_PLATFORM_METADATA_KEY = "x-carbon-caller-platform"

# Who may be named in the table: the national services by kind, a regional one by kind (of the callee's region).
GATEWAY_KIND = "gateway"
OPS_API_KIND = "ops-api"
# The national services that call on behalf of an external caller, and so may name it in metadata.
_FORWARDERS = frozenset({GATEWAY, OPS_API})

_PUBLIC = frozenset({GATEWAY_KIND, OPS_API_KIND})
_OPS = frozenset({OPS_API_KIND})


def _service(package: str, methods: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    return {f"/{package}/{method}": kinds for method, kinds in methods.items()}


# The table. Each entry: full method name -> the caller kinds allowed. Finer rules inside a method (who may debit
# system:issuance or carry lots in through PostTransfers; who may look an account up by ID number) are checked by
# the service with current_caller(), and named in docs/access.md.
ACCESS: dict[str, frozenset[str]] = {
    **_service(
        "carbon.ledger.v1.LedgerService",
        {
            "PostTransfers": frozenset({"ingest", "rewards", "identity", "incentives", GATEWAY_KIND, OPS_API_KIND}),
            "PostCredits": frozenset({"ingest", OPS_API_KIND}),
            "GetTransfer": frozenset({"rewards", GATEWAY_KIND, OPS_API_KIND}),
            "RefundTransfer": frozenset({"rewards", OPS_API_KIND}),
            "Hold": frozenset({"rewards", GATEWAY_KIND}),
            "CommitHold": frozenset({"rewards", GATEWAY_KIND}),
            "ReleaseHold": frozenset({"rewards", GATEWAY_KIND}),
            "HoldBatch": frozenset({"rewards", GATEWAY_KIND}),
            "CommitHolds": frozenset({"rewards", GATEWAY_KIND}),
            "ReleaseHolds": frozenset({"rewards", GATEWAY_KIND}),
            "GetHold": frozenset({"rewards", GATEWAY_KIND, OPS_API_KIND}),
            "SweepExpiredHolds": _OPS,
            "GetBalance": frozenset({"identity", "rewards", "incentives", GATEWAY_KIND, OPS_API_KIND}),
            "ListStatementEntries": _PUBLIC,
            "ListLots": _PUBLIC,
            "ListExpiringPoints": _PUBLIC,
            "GetMonthlySummary": _PUBLIC,
            "ExpirePoints": _OPS,
            "VerifyJournal": _OPS,
            "CheckConservation": _OPS,
            "ListJobRuns": _OPS,
            "GetPeriodFigures": frozenset({GATEWAY_KIND, OPS_API_KIND}),
            "GetExpiringAhead": frozenset({GATEWAY_KIND, OPS_API_KIND}),
            "StartJobRun": _OPS,
        },
    ),
    **_service(
        "carbon.identity.v1.IdentityService",
        {
            "OpenAccount": _PUBLIC,
            "GetAccount": frozenset({"incentives", GATEWAY_KIND, OPS_API_KIND}),
            "ResolveAccount": _PUBLIC,
            "BatchResolveAccounts": frozenset({"ingest", GATEWAY_KIND, OPS_API_KIND}),
            # Person keys of many accounts at once: only for the gateway's batches of cross-region transfers.
            "BatchGetAccounts": frozenset({GATEWAY_KIND}),
            "FindAccountsByPersonKey": _PUBLIC,
            "ListBindings": _PUBLIC,
            "IssueResidentAuthorization": _PUBLIC,
            "GrantConsent": _PUBLIC,
            "RevokeConsent": _PUBLIC,
            "ListConsents": _PUBLIC,
            "CheckConsents": frozenset({"ingest", GATEWAY_KIND}),
            "CheckConsentColumns": frozenset({"ingest", "incentives"}),
            "CloseAccount": _PUBLIC,
            "CorrectRealNameRecord": _PUBLIC,
            # The gateway's own question for GatewayService.CheckGuardian (ADR 0209); never forwarded.
            "GetGuardianStanding": frozenset({GATEWAY_KIND}),
            "ListJobRuns": _OPS,
            "GetAccountFigures": frozenset({GATEWAY_KIND, OPS_API_KIND}),
            "SetReminderPreference": _PUBLIC,
            "QueueReminders": frozenset({"ledger", OPS_API_KIND}),
            "ListReminderDeliveries": _OPS,
            "RetryReminderDelivery": _OPS,
        },
    ),
    **_service(
        "carbon.ingest.v1.IngestService",
        {
            "SubmitEvents": _PUBLIC,
            "StreamEvents": _PUBLIC,
            "ExplainScore": _PUBLIC,
            "ListBehaviours": _PUBLIC | {"incentives"},
            "CreateRuleVersion": _OPS,
            "ListRuleVersions": _PUBLIC,
            "RegisterPartner": _OPS,
            "GetPartner": _OPS,
            "ListPartners": _OPS,
            "RotatePartnerSecret": _OPS,
            "UpdatePartnerBehaviours": _OPS,
            "GetStatistics": _OPS,
            "ListAcceptedEvents": frozenset({"incentives"}),
            "ListAccountEvents": frozenset({GATEWAY_KIND, OPS_API_KIND}),
        },
    ),
    **_service(
        "carbon.rewards.v1.RewardsService",
        {
            "ListRewards": _PUBLIC,
            "GetReward": _PUBLIC,
            "CreateReward": _OPS,
            "UpdateReward": _OPS,
            "RetireReward": _OPS,
            "Redeem": _PUBLIC,
            "GetRedemption": _PUBLIC,
            "ListVouchers": _PUBLIC,
            "UseVoucher": _PUBLIC,
            "CancelVoucher": _PUBLIC,
            "ListCharityProjects": _PUBLIC,
            "Donate": _PUBLIC,
            "RecommendRewards": _PUBLIC,
            "GetCharityFigures": frozenset({GATEWAY_KIND, OPS_API_KIND}),
        },
    ),
    **_service(
        "carbon.incentives.v1.IncentivesService",
        {
            "CreateCampaign": _OPS,
            "ListCampaigns": _OPS,
            "ListOffers": _PUBLIC,
            "ExplainOffer": _PUBLIC,
            "AcceptOffer": _PUBLIC,
            "SetPersonalisation": _PUBLIC,
            "GetProfile": _PUBLIC,
        },
    ),
}

# The gateway's internal methods: its front door admits external callers to its other methods; these only the service
# identities of the kinds named here, of any region (the caller's region is the one its identity names), checked by
# the gateway's servicer with allowed_at_gateway().
GATEWAY_ACCESS: dict[str, frozenset[str]] = _service(
    "carbon.gateway.v1.GatewayService",
    {
        "ClaimActivities": frozenset({"ingest"}),
        # An ingest attempt giving back claims it made ahead of recording and did not record (ADR 0415).
        "ReleaseActivityClaims": frozenset({"ingest"}),
        # An ingest's sweep listing its region's attempts that claimed ahead and never said they recorded (ADR 0416).
        "ListClaimAttempts": frozenset({"ingest"}),
        # A region's identity judging a guardian of another region (ADR 0209).
        "CheckGuardian": frozenset({"identity"}),
    },
)

# Open to anyone who reaches the port: liveness probes and service discovery carry no identity.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.")


def is_open(method: str) -> bool:
    return method.lstrip("/").startswith(OPEN_SERVICES)


def allowed(caller_identity: str, method: str, region_code: str) -> bool:
    """Whether the table lets `caller_identity` call `method` on a service of `region_code`."""
    kinds = ACCESS.get(method)
    if kinds is None:
        return False
    try:
        caller = identities.parse(caller_identity)
    except IdentityError:
        return False
    if caller.is_national:
        return caller.kind in kinds
    return caller.region_code == region_code and caller.kind in kinds


def allowed_at_gateway(caller_identity: str, method: str) -> bool:
    """Whether GATEWAY_ACCESS lets `caller_identity` (of any region) call the gateway's internal `method`."""
    kinds = GATEWAY_ACCESS.get(method)
    try:
        return kinds is not None and identities.parse(caller_identity).kind in kinds
    except IdentityError:
        return False


@dataclass(frozen=True)
class Caller:
    """The verified caller of the running call: its service `identity` (SPIFFE ID, "" when none was proved) and,
    only when that service is the gateway or the ops API, the external `caller` it acts for and that caller's
    `platform` (metadata x-carbon-caller and x-carbon-caller-platform; from anyone else they are ignored)."""

    identity: str = ""
    caller: str = ""
    platform: str = ""

    @property
    def is_gateway(self) -> bool:
        return self.identity == GATEWAY

    @property
    def is_ops_api(self) -> bool:
        return self.identity == OPS_API

    def is_regional(self, region_code: str, kind: str) -> bool:
        return bool(self.identity) and self.identity == identities.regional(region_code, kind)


UNIDENTIFIED = Caller()
_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("carbon_caller", default=UNIDENTIFIED)


def current_caller() -> Caller:
    """The verified caller of the call being served (UNIDENTIFIED outside a call, e.g. a use case run by a tool)."""
    return _current.get()


def caller_from_metadata(identity: str, metadata: Mapping[str, str]) -> Caller:
    """The caller record for a proved identity: forwarded names kept only from the gateway or the ops API."""
    if identity not in _FORWARDERS:
        return Caller(identity=identity)
    return Caller(
        identity=identity,
        caller=metadata.get(CALLER_METADATA_KEY, ""),
        platform=metadata.get(CALLER_PLATFORM_METADATA_KEY, ""),
    )


# --- the server side -----------------------------------------------------------------------------------------------


class Refused(Exception):
    """An authentication or authorization failure, as the status the caller gets."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata


def peer_spiffe_id(context: grpc.ServicerContext) -> str:
    """The SPIFFE ID in the URI SAN of the client certificate verified for this call, or "" (no mTLS, or no such
    SAN). The certificate's identity decides, not merely that it chains to the CA."""
    auth = context.auth_context()
    for key in ("peer_spiffe_id", "peer_uri"):
        for value in auth.get(key, ()):
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text.startswith(identities.PREFIX):
                return text
    return ""


class Authenticator:
    """Turns a call's credentials into a verified identity: the mTLS certificate's SAN when there is one, else the
    token in metadata, verified against the trust bundle (cached: a hot caller costs a dict look-up)."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._verifier = verifier

    def identity(self, context: grpc.ServicerContext, metadata: Mapping[str, str]) -> str:
        from_certificate = peer_spiffe_id(context)
        if from_certificate:
            return from_certificate
        token = metadata.get(identities.TOKEN_METADATA_KEY)
        if not token:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "SERVICE_IDENTITY_MISSING",
                "the call carries no service identity (mTLS certificate or x-carbon-service-token)",
                {},
            )
        if self._verifier is None:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "SERVICE_TOKEN_INVALID",
                "this service has no trust bundle to verify service tokens against",
                {},
            )
        try:
            return self._verifier.verify(token)
        except TokenInvalid as error:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "SERVICE_TOKEN_INVALID", str(error), {}) from None


Handler = Callable[[Any, grpc.ServicerContext], Any]


class AccessInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates and authorizes every call before the servicer runs, and makes the caller current for it.

    `enforce` False (the gateway's front door) records a proved identity but refuses nothing itself."""

    def __init__(self, authenticator: Authenticator, region_code: str, domain: str, enforce: bool = True) -> None:
        self._authenticator = authenticator
        self._region_code = region_code
        self._domain = domain
        self._enforce = enforce

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or is_open(method):
            return handler
        for kind, factory in _FACTORIES.items():
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrap = self._wrap_stream if kind.endswith("_stream") else self._wrap
                return factory(
                    wrap(behaviour, method),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def admit(self, context: grpc.ServicerContext, method: str) -> Caller:
        """The caller of this call, or Refused."""
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        try:
            identity = self._authenticator.identity(context, metadata)
        except Refused:
            if self._enforce:
                raise
            return UNIDENTIFIED
        if self._enforce and not allowed(identity, method, self._region_code):
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                "CALLER_NOT_ALLOWED",
                f"{identity} may not call {method}",
                {"caller": identity, "method": method},
            )
        return caller_from_metadata(identity, metadata)

    def _refuse(self, context: grpc.ServicerContext, refused: Refused, method: str) -> None:
        log.info("call refused", extra={"method": method, "reason": refused.reason, **refused.metadata})
        context.abort_with_status(
            status_for(refused.code, refused.message, refused.reason, self._domain, refused.metadata)
        )

    def _wrap(self, behaviour: Handler, method: str) -> Handler:
        # wraps: the method's marks (failures.idempotent) stay visible to the error-mapping interceptor outside.
        @functools.wraps(behaviour)
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                caller = self.admit(context, method)
            except Refused as refused:
                self._refuse(context, refused, method)
            token = _current.set(caller)
            try:
                return behaviour(request, context)
            finally:
                _current.reset(token)

        return wrapped

    def _wrap_stream(self, behaviour: Handler, method: str) -> Handler:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                caller = self.admit(context, method)
            except Refused as refused:
                self._refuse(context, refused, method)
            _current.set(caller)
            try:
                yield from behaviour(request, context)
            finally:
                _current.set(UNIDENTIFIED)

        return wrapped


_FACTORIES: dict[str, Callable[..., grpc.RpcMethodHandler]] = {  # type: ignore[type-arg]
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def access_interceptor(settings: Settings, domain: str) -> AccessInterceptor:
    """The interceptor for a server with these settings: enforcing the table unless the server is the gateway."""
    verifier = TokenVerifier.from_file(settings.trust_bundle_file) if settings.trust_bundle_file else None
    enforce = settings.service != "gateway"
    if enforce and verifier is None and not settings.tls_ca_file:
        log.warning(
            "no trust bundle (CARBON_TRUST_BUNDLE_FILE) and no mTLS: every call but health checks will be refused",
            extra={"service": settings.service},
        )
    return AccessInterceptor(Authenticator(verifier), settings.region_code, domain, enforce=enforce)


# --- the table as documentation -------------------------------------------------------------------------------------

_CALLER_COLUMNS = (GATEWAY_KIND, OPS_API_KIND, "identity", "ingest", "ledger", "rewards", "incentives")
# The finer rules a service checks inside a method, named beside the method in docs/access.md.
FINER_RULES = {
    "/carbon.ledger.v1.LedgerService/PostTransfers": (
        "items with carried lots: the gateway only; items debiting a system account without carried lots (fresh "
        "points, e.g. from system:issuance): this region's ingest, incentives (campaign budgets and bonuses, ADR "
        "0115) and the ops API only"
    ),
    "/carbon.identity.v1.IdentityService/ResolveAccount": "by id_number: the ops API only",
}


def render_markdown() -> str:
    """docs/access.md: the table above, one row per method, a column per kind of caller."""
    lines = [
        "# Who may call what",
        "",
        "Generated from `service_kit/access.py` (`python -m service_kit.access > docs/access.md`); a test checks that",
        "this file matches the code. A regional service answers `gateway` and `ops-api` (the national services) and",
        "the services of **its own region** of the kinds marked; a call from anyone else is refused with",
        "PERMISSION_DENIED `CALLER_NOT_ALLOWED`, a call without a verified identity with UNAUTHENTICATED",
        "(`SERVICE_IDENTITY_MISSING`, `SERVICE_TOKEN_INVALID`). Health checks and reflection are open; a method",
        "missing here is refused. The gateway's own methods are for external callers, whom its front door admits,",
        "except its internal methods (the second table).",
        "Why: docs/adr/0011-service-identities-and-access-table.md.",
        "",
        "| method | " + " | ".join(_CALLER_COLUMNS) + " | finer rule in the service |",
        "|---|" + "---|" * len(_CALLER_COLUMNS) + "---|",
    ]
    for method in sorted(ACCESS):
        marks = ["x" if kind in ACCESS[method] else "" for kind in _CALLER_COLUMNS]
        lines.append(f"| `{method.lstrip('/')}` | " + " | ".join(marks) + f" | {FINER_RULES.get(method, '')} |")
    lines += [
        "",
        "## The gateway's internal methods",
        "",
        "Not for external callers (the front door refuses them, operators included): only the service identities of",
        "the kinds marked, **of any region**; the caller's region is the one its verified identity names.",
        "",
        "| method | " + " | ".join(_CALLER_COLUMNS) + " |",
        "|---|" + "---|" * len(_CALLER_COLUMNS),
    ]
    for method in sorted(GATEWAY_ACCESS):
        marks = ["x" if kind in GATEWAY_ACCESS[method] else "" for kind in _CALLER_COLUMNS]
        lines.append(f"| `{method.lstrip('/')}` | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
