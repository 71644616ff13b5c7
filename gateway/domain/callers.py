"""Who may call the gateway: per-caller API keys (or mTLS subjects), their region and role, and region policies.

Configuration (CARBON_GATEWAY_CONFIG, a JSON file):
    {"callers": [{"id": "zj-platform", "region": "330000", "role": "platform",
                  "key_sha256": "<hex sha256 of the API key>", "tls_common_name": "zj-platform.gov.cn",
                  "rate_per_s": 200, "burst": 400}],
     "rate_limit": {"rate_per_s": 100, "burst": 200},
     "policies": {"330000": {"transfers_between_persons": false}}}
A caller is known by the common name of its verified client certificate (mTLS) or else by its API key.
Only a digest of each key is configured, so the file holds no secret. Without callers the gateway runs open
(embedded mode): every call acts as the national operator, and a warning says so at start.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from service_kit.errors import PermissionDenied, Unauthenticated

# What the gateway reads of a call's metadata: (key, value) pairs as gRPC hands them over.
CallMetadata = Sequence[tuple[str, str | bytes]]


class Role(StrEnum):
    PLATFORM = "platform"  # a provincial platform: its own region's accounts, cross-region moves of its users
    PARTNER = "partner"  # a data partner: events only
    OPERATOR = "operator"  # national operations: read everything, act for any region


@dataclass(frozen=True)
class Caller:
    caller_id: str
    region_code: str
    role: Role

    def may_act_for_region(self, region_code: str) -> bool:
        return self.role is Role.OPERATOR or (self.role is Role.PLATFORM and self.region_code == region_code)

    def require_region(self, region_code: str, field: str) -> None:
        if not self.may_act_for_region(region_code):
            raise PermissionDenied(
                "CALLER_REGION_MISMATCH",
                f"{field}: caller {self.caller_id} may not act for accounts of region {region_code}",
                {"field": field, "caller_region": self.region_code, "account_region": region_code},
            )


OPEN_CALLER = Caller(caller_id="open", region_code="000000", role=Role.OPERATOR)


@dataclass(frozen=True)
class RateLimit:
    rate_per_s: float = 100.0
    burst: int = 200


@dataclass(frozen=True)
class CallerEntry:
    caller: Caller
    key_digest: bytes
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

    @property
    def open(self) -> bool:
        return not self.callers

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> GatewayConfig:
        """The configuration from its parsed JSON; KeyError, TypeError or ValueError when it is malformed."""
        default = _rate_limit(raw.get("rate_limit", {}), RateLimit())
        callers = [_caller_entry(item, default) for item in raw.get("callers", [])]
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

    def authenticate(self, metadata: CallMetadata, common_name: str = "") -> Caller:
        """The caller behind a call: the verified client certificate's common name, else `Bearer <key>`."""
        if self.open:
            return OPEN_CALLER
        if common_name:
            for entry in self.callers:
                if entry.tls_common_name and hmac.compare_digest(entry.tls_common_name.encode(), common_name.encode()):
                    return entry.caller
        header = next((str(value) for key, value in metadata if key == "authorization"), "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise Unauthenticated(
                "CREDENTIALS_MISSING", "send `authorization: Bearer <api key>` or a client certificate"
            )
        digest = hashlib.sha256(key.strip().encode()).digest()
        match: Caller | None = None
        for entry in self.callers:  # every entry is compared, so timing does not tell which one matched
            if hmac.compare_digest(entry.key_digest, digest):
                match = entry.caller
        if match is None:
            raise Unauthenticated("CREDENTIALS_INVALID", "the API key is not known")
        return match


def _caller_entry(item: Mapping[str, Any], default: RateLimit) -> CallerEntry:
    # `tls_subject` ("CN=<name>") is the older spelling of `tls_common_name`.
    common_name = str(item.get("tls_common_name", "") or str(item.get("tls_subject", "")).removeprefix("CN="))
    return CallerEntry(
        caller=Caller(caller_id=str(item["id"]), region_code=str(item["region"]), role=Role(item["role"])),
        key_digest=bytes.fromhex(item.get("key_sha256", "")),
        tls_common_name=common_name,
        rate_limit=_rate_limit(item, default) if "rate_per_s" in item or "burst" in item else None,
    )


def _rate_limit(raw: Mapping[str, object], default: RateLimit) -> RateLimit:
    rate = float(str(raw.get("rate_per_s", default.rate_per_s)))
    burst = int(str(raw.get("burst", default.burst)))
    if rate <= 0 or burst < 1:
        raise ValueError("rate_per_s must be positive and burst at least 1")
    return RateLimit(rate_per_s=rate, burst=burst)


def key_digest_hex(api_key: str) -> str:
    """What the configuration holds for an API key: its SHA-256, in hex."""
    return hashlib.sha256(api_key.encode()).hexdigest()
