"""Who may call the gateway: per-caller API keys (or mTLS subjects), their region and role, and region policies.

Configuration (CARBON_GATEWAY_CONFIG, a JSON file):
    {"callers": [{"id": "zj-platform", "region": "330000", "role": "platform",
                  "key_sha256": "<hex sha256 of the API key>", "tls_subject": "CN=zj-platform"}],
     "policies": {"330000": {"transfers_between_persons": false}}}
Only a digest of each key is configured, so the file holds no secret. Without callers the gateway runs open
(embedded mode): every call acts as the national operator, and a warning says so at start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from service_kit.errors import PermissionDenied, Unauthenticated

log = logging.getLogger("carbon.gateway.callers")


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


OPEN_CALLER = Caller("open", "000000", Role.OPERATOR)


@dataclass(frozen=True)
class CallerEntry:
    caller: Caller
    key_digest: bytes
    tls_subject: str = ""


@dataclass(frozen=True)
class RegionPolicy:
    transfers_between_persons: bool = False


@dataclass(frozen=True)
class GatewayConfig:
    callers: Sequence[CallerEntry] = ()
    policies: dict[str, RegionPolicy] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return not self.callers

    @classmethod
    def load(cls, path: Path) -> GatewayConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            callers = [
                CallerEntry(
                    Caller(str(item["id"]), str(item["region"]), Role(item["role"])),
                    bytes.fromhex(item.get("key_sha256", "")),
                    str(item.get("tls_subject", "")),
                )
                for item in raw.get("callers", [])
            ]
            policies = {
                str(code): RegionPolicy(bool(policy.get("transfers_between_persons", False)))
                for code, policy in raw.get("policies", {}).items()
            }
        except FileNotFoundError:
            raise ValueError(f"gateway config: no file at {path}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"gateway config: {path} is malformed: {error}") from None
        return cls(callers, policies)

    def policy(self, region_code: str) -> RegionPolicy:
        return self.policies.get(region_code, RegionPolicy())

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]], tls_subjects: Sequence[str] = ()) -> Caller:
        """The caller behind a call: an mTLS certificate subject, else `authorization: Bearer <key>`."""
        if self.open:
            return OPEN_CALLER
        for subject in tls_subjects:
            for entry in self.callers:
                if entry.tls_subject and hmac.compare_digest(entry.tls_subject.encode(), subject.encode()):
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


def key_digest_hex(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()
