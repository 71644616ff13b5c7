"""The rules of a resident authorization request: well-formed operations, and who may ask."""

from __future__ import annotations

from typing import Any

import pytest

from identity_svc.domain.requesters import requester
from identity_svc.domain.resident_authorizations import (
    Asker,
    ResidentOperation,
    asker,
    validate_authorization_request,
)
from service_kit.accounts import new_account_number
from service_kit.errors import InvalidArgument, PermissionDenied
from service_kit.identities import GATEWAY, OPS_API

SOURCE = new_account_number("330000")
TARGET = new_account_number("110000")
TRANSFER = int(ResidentOperation.CROSS_REGION_TRANSFER)
REDEEM = int(ResidentOperation.REDEEM_ANYWHERE)


def _request(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": "xfer-1", "account_number": SOURCE, "operation": TRANSFER, "amount_points": 100,
        "to_account": TARGET, "reward_id": "", "quantity": 0, "staff_id": "",
    }  # fmt: skip
    return {**fields, **changes}


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"request_id": " "}, "request_id", "INVALID_ARGUMENT"),
        ({"account_number": "330000"}, "account_number", "INVALID_ACCOUNT_NUMBER"),
        ({"operation": 0}, "operation", "INVALID_OPERATION"),
        ({"operation": 9}, "operation", "INVALID_OPERATION"),
        ({"amount_points": 0}, "amount_points", "INVALID_AMOUNT"),
        ({"amount_points": 10_000_000_001}, "amount_points", "INVALID_AMOUNT"),
        ({"to_account": "1100001"}, "to_account", "INVALID_ACCOUNT_NUMBER"),
        ({"to_account": SOURCE}, "to_account", "INVALID_ARGUMENT"),
        ({"reward_id": "r1"}, "reward_id", "INVALID_ARGUMENT"),
        ({"quantity": 2}, "quantity", "INVALID_QUANTITY"),
        ({"operation": REDEEM}, "reward_id", "INVALID_ARGUMENT"),
        ({"operation": REDEEM, "reward_id": "r" * 65}, "reward_id", "INVALID_ARGUMENT"),
        ({"operation": REDEEM, "reward_id": "r1", "quantity": 1001}, "quantity", "INVALID_QUANTITY"),
        ({"operation": REDEEM, "reward_id": "r1", "quantity": -1}, "quantity", "INVALID_QUANTITY"),
        ({"staff_id": "x" * 129}, "staff_id", "INVALID_ARGUMENT"),
    ],
)
def test_a_malformed_request_is_refused_naming_the_field(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_authorization_request(**_request(**changes))
    assert (refused.value.field, refused.value.reason) == (field, reason)


def test_a_redemption_quantity_of_zero_means_one() -> None:
    request = validate_authorization_request(**_request(operation=REDEEM, reward_id="r1"))
    assert (request.operation, request.quantity) == (ResidentOperation.REDEEM_ANYWHERE, 1)


def test_the_op_claims_name_the_operations() -> None:
    assert [operation.claim for operation in ResidentOperation] == ["cross_region_transfer", "redeem_anywhere"]


def test_the_gateway_asks_for_the_platform_it_speaks_for_when_that_platform_is_bound() -> None:
    via_gateway = requester(GATEWAY, caller="alipay-zj", platform="alipay")
    assert asker(via_gateway, "", {"alipay", "jd"}) == Asker(platform="alipay")
    with pytest.raises(PermissionDenied) as refused:
        asker(via_gateway, "", {"jd"})
    assert refused.value.reason == "PLATFORM_NOT_BOUND"


def test_a_gateway_caller_that_is_no_platform_is_refused() -> None:
    operator = requester(GATEWAY, caller="ops-national")
    with pytest.raises(PermissionDenied) as refused:
        asker(operator, "", {"alipay"})
    assert refused.value.reason == "PLATFORM_NOT_BOUND"


def test_forwarded_values_count_only_from_the_gateway() -> None:
    posing = requester(OPS_API, caller="alipay-zj", platform="alipay")
    assert (posing.caller, posing.platform) == ("", "")
    assert asker(posing, "staff-1", set()) == Asker(staff_id="staff-1")
