"""Who may call the gateway: each external caller's credentials, the regions it acts for and the methods it may use.

Configuration (CARBON_GATEWAY_CONFIG, a JSON file; the gateway does not start without one):
    {"callers": [{"id": "zj-platform", "role": "platform", "platform": "alipay", "regions": ["330000"],
                  "methods": ["carbon.identity.v1.IdentityService/*", "carbon.gateway.v1.GatewayService/ListRegions"],
                  "keys": [{"sha256": "<hex sha256 of a key>", "not_after": "2027-01-01T00:00:00Z"}],
                  "tls_common_name": "zj-platform.gov.cn", "rate_per_s": 200, "burst": 400}],
     "rate_limit": {"rate_per_s": 100, "burst": 200},
     "policies": {"330000": {"transfers_between_persons": false}}}
A caller is known by the common name of its verified client certificate (mTLS) or else by `authorization: Bearer
<key>`. Only digests of keys are configured, so the file holds no secret; a caller may have several keys, each valid
until its optional not_after, so a key is rotated by adding the new one and letting the old one lapse. `regions`
lists region codes or "*" (every region); `methods` lists full method names "<package>.<Service>/<Method>", a
service with "/*", or "*"; without `methods` the role's default applies (ROLE_METHODS). The older single-key form
(`region`, `key_sha256`) is still read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from service_kit.errors import PermissionDenied, Unauthenticated

# What the gateway reads of a call's metadata: (key, value) pairs as gRPC hands them over.
CallMetadata = Sequence[tuple[str, str | bytes]]

ANY = "*"
_IDENTITY = "carbon.identity.v1.IdentityService"
_INGEST = "carbon.ingest.v1.IngestService"
_LEDGER = "carbon.ledger.v1.LedgerService"
_REWARDS = "carbon.rewards.v1.RewardsService"
_INCENTIVES = "carbon.incentives.v1.IncentivesService"
_GATEWAY = "carbon.gateway.v1.GatewayService"


class Role(StrEnum):
    PLATFORM = "platform"  # a provincial or channel platform: its residents' accounts in its regions
    PARTNER = "partner"  # a data partner: submits events to its regions
    OPERATOR = "operator"  # national operations (the ops API): every region, every method the gateway serves


# What each role may call when its entry names no methods. Patterns only ever admit methods the gateway serves.
ROLE_METHODS: dict[Role, frozenset[str]] = {
    Role.PLATFORM: frozenset(
        {
            f"{_IDENTITY}/*",
            f"{_LEDGER}/*",
            f"{_REWARDS}/*",
            f"{_INCENTIVES}/*",
            f"{_INGEST}/ListBehaviours",
            *(
                f"{_GATEWAY}/{name}"
                for name in (
                    "ListRegions",
                    "GetDirectoryEntry",
                    "CreateCrossRegionTransfer",
                    "CreateCrossRegionTransfers",
                    "GetCrossRegionTransfer",
                    "ListCrossRegionTransfers",
                    "RedeemAnywhere",
                    "ExportPersonalData",
                    "StreamPersonalData",
                )
            ),
        }
    ),
    Role.PARTNER: frozenset(
        {
            *(
                f"{_INGEST}/{name}"
                for name in ("SubmitEvents", "StreamEvents", "ExplainScore", "ListBehaviours", "ListRuleVersions")
            ),
            f"{_GATEWAY}/ListRegions",
        }
    ),
    Role.OPERATOR: frozenset({ANY}),
}


def method_allowed(patterns: Iterable[str], method: str) -> bool:
    """Whether a full method name ("pkg.Service/Method", with or without a leading "/") matches a pattern."""
    name = method.lstrip("/")
    service = name.partition("/")[0]
    return any(pattern in (ANY, name, f"{service}/*") for pattern in patterns)


@dataclass(frozen=True)
class Caller:
    caller_id: str
    role: Role
    regions: frozenset[str]
    methods: frozenset[str] = frozenset({ANY})
    platform: str = ""  # the channel platform whose users it speaks for (x-carbon-caller-platform), if any

    @property
    def operator(self) -> bool:
        return self.role is Role.OPERATOR

    def may_act_for_region(self, region_code: str) -> bool:
        return ANY in self.regions or region_code in self.regions

    def require_region(self, region_code: str, field: str) -> None:
        if not self.may_act_for_region(region_code):
            raise PermissionDenied(
                "CALLER_REGION_MISMATCH",
                f"{field}: caller {self.caller_id} may not act for region {region_code}",
                {"field": field, "caller": self.caller_id, "region": region_code},
            )

    def require_method(self, method: str) -> None:
        if not method_allowed(self.methods, method):
            raise PermissionDenied(
                "METHOD_NOT_ALLOWED_FOR_CALLER",
                f"caller {self.caller_id} may not call {method.lstrip('/')}",
                {"caller": self.caller_id, "method": method.lstrip("/")},
            )


@dataclass(frozen=True)
class RateLimit:
    rate_per_s: float = 100.0
    burst: int = 200


@dataclass(frozen=True)
class Key:
    digest: bytes
    not_after: datetime | None = None  # None: valid until removed from the configuration

    def valid_at(self, now: datetime) -> bool:
        return self.not_after is None or now <= self.not_after


@dataclass(frozen=True)
class CallerEntry:
    caller: Caller
    keys: Sequence[Key] = ()
    tls_common_name: str = ""
    rate_limit: RateLimit | None = None  # None: the config's default


@dataclass(frozen=True)
class RegionPolicy:
    transfers_between_persons: bool = False


@dataclass(frozen=True)
class GatewayConfig:
    callers: Sequence[CallerEntry] = ()
    policies: dict[str, RegionPolicy] = field(default_factory=dict)
    rate_limit: RateLimit = RateLimit()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> GatewayConfig:
        """The configuration from its parsed JSON; KeyError, TypeError or ValueError when it is malformed."""
        default = _rate_limit(raw.get("rate_limit", {}), RateLimit())
        callers = [_caller_entry(item, default) for item in raw.get("callers", [])]
        if len({entry.caller.caller_id for entry in callers}) != len(callers):
            raise ValueError("caller ids must be unique")
        policies = {
            str(code): RegionPolicy(transfers_between_persons=bool(policy.get("transfers_between_persons", False)))
            for code, policy in raw.get("policies", {}).items()
        }
        return cls(callers=callers, policies=policies, rate_limit=default)

    def policy(self, region_code: str) -> RegionPolicy:
        return self.policies.get(region_code, RegionPolicy())

    def allows_transfers_between_persons(self, from_region: str, to_region: str) -> bool:
        """Points may move between different persons' accounts only where both regions' policies say so."""
        return self.policy(from_region).transfers_between_persons and self.policy(to_region).transfers_between_persons

    def rate_limit_of(self, caller: Caller) -> RateLimit:
        for entry in self.callers:
            if entry.caller == caller and entry.rate_limit is not None:
                return entry.rate_limit
        return self.rate_limit

    def authenticate(self, metadata: CallMetadata, common_name: str, now: datetime) -> Caller:
        """The caller behind a call: the verified client certificate's common name, else `Bearer <key>`."""
        if common_name:
            for entry in self.callers:
                if entry.tls_common_name and hmac.compare_digest(entry.tls_common_name.encode(), common_name.encode()):
                    return entry.caller
        header = next((str(value) for key, value in metadata if key == "authorization"), "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated(
                "CREDENTIALS_MISSING", "send `authorization: Bearer <api key>` or a client certificate"
            )
        digest = hashlib.sha256(key.strip().encode()).digest()
        match: tuple[Caller, Key] | None = None
        for entry in self.callers:  # every key is compared, so timing does not tell which one matched
            for candidate in entry.keys:
                if hmac.compare_digest(candidate.digest, digest):
                    match = (entry.caller, candidate)
        if match is None:
            raise Unauthenticated("CREDENTIALS_INVALID", "the API key is not known")
        caller, matched = match
        if not matched.valid_at(now):
            raise Unauthenticated(
                "CREDENTIALS_EXPIRED",
                f"this key of caller {caller.caller_id} expired; use its replacement",
                {"caller": caller.caller_id, "not_after": matched.not_after.isoformat() if matched.not_after else ""},
            )
        return caller


def _caller_entry(item: Mapping[str, Any], default: RateLimit) -> CallerEntry:
    # `tls_subject` ("CN=<name>") is the older spelling of `tls_common_name`.
    common_name = str(item.get("tls_common_name", "") or str(item.get("tls_subject", "")).removeprefix("CN="))
    role = Role(item["role"])
    regions = item.get("regions", [item["region"]] if "region" in item else [])
    if role is Role.OPERATOR:
        regions = [ANY]
    methods = item.get("methods")
    keys = [_key(raw) for raw in item.get("keys", [])]
    if item.get("key_sha256"):
        keys.append(Key(bytes.fromhex(item["key_sha256"])))
    if not keys and not common_name:
        raise ValueError(f"caller {item['id']}: needs keys or tls_common_name")
    caller = Caller(
        caller_id=str(item["id"]),
        role=role,
        regions=frozenset(str(code) for code in regions),
        methods=frozenset(str(name).lstrip("/") for name in methods) if methods is not None else ROLE_METHODS[role],
        platform=str(item.get("platform", "")),
    )
    return CallerEntry(
        caller=caller,
        keys=keys,
        tls_common_name=common_name,
        rate_limit=_rate_limit(item, default) if "rate_per_s" in item or "burst" in item else None,
    )


def _key(raw: Mapping[str, Any]) -> Key:
    digest = bytes.fromhex(str(raw["sha256"]))
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError("a key's sha256 must be 64 hex digits")
    not_after = raw.get("not_after")
    if not not_after:
        return Key(digest)
    parsed = datetime.fromisoformat(str(not_after))
    if parsed.tzinfo is None:
        raise ValueError("a key's not_after needs a time zone, e.g. 2027-01-01T00:00:00Z")
    return Key(digest, parsed)


def _rate_limit(raw: Mapping[str, object], default: RateLimit) -> RateLimit:
    rate = float(str(raw.get("rate_per_s", default.rate_per_s)))
    burst = int(str(raw.get("burst", default.burst)))
    if rate <= 0 or burst < 1:
        raise ValueError("rate_per_s must be positive and burst at least 1")
    return RateLimit(rate_per_s=rate, burst=burst)


def key_digest_hex(api_key: str) -> str:
    """What the configuration holds for an API key: its SHA-256, in hex."""
    return hashlib.sha256(api_key.encode()).hexdigest()
