"""Cross-region sharing consent (issue 17 item 2, ADR 0610): the directory, cross-region transfers and redeem
anywhere are refused, naming the category, until the person consents to sharing in each account's home region;
revoking it stops new sharing, not what was settled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.identity.v1 import identity_service_pb2 as identity_pb2
from gateway import clients
from gateway.clients import call
from gateway.service import accounts, sharing_consent
from service_kit.status import error_details
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata
from tests.gateway.service.test_redeem_anywhere import redeem_anywhere

CATEGORY = "DATA_CATEGORY_CROSS_REGION_SHARING"


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path, ["330000", "110000"], rewards=True, ledgers_in_process=True)
    running = start_inprocess_gateway(federation)
    yield federation
    running.stop()
    federation.close()


def refusal(call: pytest.ExceptionInfo[grpc.RpcError]) -> tuple[str, str, str, str]:
    details = error_details(call.value)
    return details.code.name, details.reason, details.metadata.get("field", ""), details.metadata.get("category", "")


def person(fed: Federation, sharing: tuple[bool, bool]) -> tuple[str, str]:
    """One person's accounts in Zhejiang and Beijing, each consenting to sharing as `sharing` says."""
    fed._serial += 1
    serial = fed._serial
    zj = fed.open_account("330000", serial, sharing=sharing[0])
    bj = fed.open_account("110000", serial, sharing=sharing[1])
    return zj, bj


def test_a_transfer_is_refused_without_sharing_consent_and_allowed_with_it(fed: Federation) -> None:
    zj, bj = person(fed, (False, True))
    fed.earn("330000", zj, 500)
    with pytest.raises(grpc.RpcError) as missing:
        fed.transfer("t1", zj, bj, 100)
    assert refusal(missing) == ("FAILED_PRECONDITION", "CONSENT_MISSING", "from_account", CATEGORY)
    assert fed.balance("330000", zj).available_points == 500  # nothing moved, nothing recorded
    fed.consent_to_sharing(zj)
    fed.consent_to_sharing(bj, grant=False)
    with pytest.raises(grpc.RpcError) as revoked:
        fed.transfer("t1", zj, bj, 100)
    assert refusal(revoked) == ("FAILED_PRECONDITION", "CONSENT_REVOKED", "to_account", CATEGORY)
    fed.consent_to_sharing(bj)
    assert fed.transfer("t1", zj, bj, 100).state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    assert fed.balance("110000", bj).available_points == 100


def test_a_transfer_asks_each_region_once_for_the_account_and_its_sharing_consent(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str, int]] = []

    def counted(region: str, method: Any, request: Any, timeout_s: float) -> Any:
        asked.append((region, type(request).__name__, request.consent_category))
        return call(region, method, request, timeout_s)

    monkeypatch.setattr(accounts, "call", counted)  # both ways of asking end in gateway.clients.call
    monkeypatch.setattr(clients, "call", counted)
    monkeypatch.setattr(sharing_consent, "call", fail_if_called)
    zj, bj = person(fed, (True, True))
    fed.earn("330000", zj, 500)
    assert fed.transfer("t-once", zj, bj, 100).state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    sharing = common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING
    assert sorted(asked) == [("110000", "GetAccountRequest", sharing), ("330000", "GetAccountRequest", sharing)]


def test_an_identity_that_leaves_the_consent_question_unanswered_is_asked_it_apart(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older identity (a rolling update) ignores the question: its consent is then asked with CheckConsents."""

    def unanswered(region: str, method: Any, request: Any, timeout_s: float) -> Any:
        return identity_pb2.GetAccountResponse(account=call(region, method, request, timeout_s).account)

    monkeypatch.setattr(accounts, "call", unanswered)
    monkeypatch.setattr(clients, "call", unanswered)
    zj, bj = person(fed, (True, False))
    fed.earn("330000", zj, 500)
    with pytest.raises(grpc.RpcError) as missing:
        fed.transfer("t-old", zj, bj, 100)
    assert refusal(missing) == ("FAILED_PRECONDITION", "CONSENT_MISSING", "to_account", CATEGORY)
    fed.consent_to_sharing(bj)
    assert fed.transfer("t-old", zj, bj, 100).state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED


def fail_if_called(*args: Any) -> None:
    raise AssertionError("CheckConsents was asked apart")


def test_revoking_stops_new_sharing_but_not_settled_history(fed: Federation) -> None:
    zj, bj = person(fed, (True, True))
    fed.earn("330000", zj, 500)
    done = fed.transfer("t1", zj, bj, 100)
    fed.consent_to_sharing(zj, grant=False)
    assert fed.transfer("t1", zj, bj, 100) == done  # the settled transfer is still answered as it was
    assert fed.get_transfer("t1").state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    with pytest.raises(grpc.RpcError) as after:
        fed.transfer("t2", zj, bj, 100)
    assert refusal(after)[:2] == ("FAILED_PRECONDITION", "CONSENT_REVOKED")


def test_redeem_anywhere_is_refused_without_sharing_consent_and_allowed_with_it(fed: Federation) -> None:
    zj, bj = person(fed, (True, False))
    fed.earn("330000", zj, 15_000)
    with pytest.raises(grpc.RpcError) as missing:
        redeem_anywhere(fed, "ra1", zj, bj)
    assert refusal(missing) == ("FAILED_PRECONDITION", "CONSENT_MISSING", "target_account", CATEGORY)
    assert fed.balance("330000", zj).available_points == 15_000
    fed.consent_to_sharing(bj)
    response = redeem_anywhere(fed, "ra1", zj, bj)
    assert response.redemption_id and len(response.voucher_codes) == 1


def test_the_directory_needs_the_accounts_consent_and_hides_accounts_without_it(fed: Federation) -> None:
    zj, bj = person(fed, (False, False))
    fed.earn("110000", bj, 70)
    request = gw.GetDirectoryEntryRequest(account_number=zj)
    with pytest.raises(grpc.RpcError) as missing:
        fed.gateway().GetDirectoryEntry(request, metadata=metadata("zj"), timeout=10)
    assert refusal(missing) == ("FAILED_PRECONDITION", "CONSENT_MISSING", "account_number", CATEGORY)
    fed.consent_to_sharing(zj)
    entry = fed.gateway().GetDirectoryEntry(request, metadata=metadata("zj"), timeout=10)
    listed = {(a.region_code, a.account_number, a.available_points, a.error_reason) for a in entry.accounts}
    assert listed == {("330000", zj, 0, ""), ("110000", "", 0, "CONSENT_MISSING")}
    assert bj not in str(entry)
    fed.consent_to_sharing(bj)
    entry = fed.gateway().GetDirectoryEntry(request, metadata=metadata("zj"), timeout=10)
    assert {(a.account_number, a.available_points) for a in entry.accounts} == {(zj, 0), (bj, 70)}
