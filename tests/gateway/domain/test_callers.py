"""The gateway's caller configuration: several keys with their not_after, regions and method patterns, role defaults,
and configurations that are refused before the gateway starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.domain.callers import ROLE_METHODS, GatewayConfig, Role, key_digest_hex, method_allowed
from service_kit.errors import PermissionDenied, Unauthenticated

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def bearer(key: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {key}")]


def config(**caller: Any) -> GatewayConfig:
    entry = {"id": "zj", "role": "platform", "regions": ["330000"], "keys": [{"sha256": key_digest_hex("k")}], **caller}
    return GatewayConfig.from_json({"callers": [entry]})


def test_a_caller_rotates_by_holding_two_keys_until_the_old_one_lapses() -> None:
    lapse = NOW + timedelta(hours=1)
    keys = [{"sha256": key_digest_hex("old"), "not_after": lapse.isoformat()}, {"sha256": key_digest_hex("new")}]
    rotating = config(keys=keys)
    assert rotating.authenticate(bearer("old"), "", NOW).caller_id == "zj"
    assert rotating.authenticate(bearer("new"), "", NOW).caller_id == "zj"
    with pytest.raises(Unauthenticated) as expired:
        rotating.authenticate(bearer("old"), "", lapse + timedelta(seconds=1))
    assert expired.value.reason == "CREDENTIALS_EXPIRED" and expired.value.metadata["caller"] == "zj"
    assert rotating.authenticate(bearer("new"), "", lapse + timedelta(days=1)).caller_id == "zj"


def test_missing_and_unknown_credentials_are_told_apart() -> None:
    known = config()
    cases: list[tuple[list[tuple[str, str | bytes]], str]] = [
        ([], "CREDENTIALS_MISSING"),
        ([("authorization", "Basic k")], "CREDENTIALS_MISSING"),
        (bearer("other"), "CREDENTIALS_INVALID"),
    ]
    for metadata, reason in cases:
        with pytest.raises(Unauthenticated) as refused:
            known.authenticate(metadata, "", NOW)
        assert refused.value.reason == reason
    assert config(tls_common_name="zj.example").authenticate([], "zj.example", NOW).caller_id == "zj"


def test_methods_match_exactly_by_service_or_all() -> None:
    method = "/carbon.ledger.v1.LedgerService/GetBalance"
    assert method_allowed({"carbon.ledger.v1.LedgerService/GetBalance"}, method)
    assert method_allowed({"carbon.ledger.v1.LedgerService/*"}, method)
    assert method_allowed({"*"}, method)
    assert not method_allowed({"carbon.ledger.v1.LedgerService/GetBal"}, method)
    assert not method_allowed({"carbon.rewards.v1.RewardsService/*"}, method)
    narrow = config(methods=["carbon.identity.v1.IdentityService/GetAccount"]).callers[0].caller
    narrow.require_method("/carbon.identity.v1.IdentityService/GetAccount")
    with pytest.raises(PermissionDenied) as refused:
        narrow.require_method(method)
    assert refused.value.reason == "METHOD_NOT_ALLOWED_FOR_CALLER"
    assert refused.value.metadata["method"] == "carbon.ledger.v1.LedgerService/GetBalance"


def test_roles_bring_default_scopes_and_operators_act_everywhere() -> None:
    partner = config(role="partner").callers[0].caller
    assert partner.methods == ROLE_METHODS[Role.PARTNER]
    with pytest.raises(PermissionDenied):
        partner.require_method("/carbon.ledger.v1.LedgerService/GetBalance")
    partner.require_method("/carbon.ingest.v1.IngestService/StreamEvents")
    operator = config(role="operator", regions=["110000"]).callers[0].caller
    assert operator.operator and operator.may_act_for_region("440000")
    platform = config().callers[0].caller
    assert platform.may_act_for_region("330000") and not platform.may_act_for_region("110000")
    with pytest.raises(PermissionDenied) as refused:
        platform.require_region("110000", "account")
    assert refused.value.reason == "CALLER_REGION_MISMATCH"


@pytest.mark.parametrize(
    "caller",
    [
        {"keys": []},
        {"keys": [{"sha256": "abcd"}]},
        {"keys": [{"sha256": key_digest_hex("k"), "not_after": "2027-01-01T00:00:00"}]},
        {"role": "admin"},
    ],
)
def test_a_malformed_caller_is_refused_at_start(caller: dict[str, Any]) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        config(**caller)


def test_caller_ids_are_unique() -> None:
    entry = {"id": "zj", "role": "platform", "regions": ["330000"], "key_sha256": key_digest_hex("k")}
    with pytest.raises(ValueError):
        GatewayConfig.from_json({"callers": [entry, {**entry, "key_sha256": key_digest_hex("j")}]})
