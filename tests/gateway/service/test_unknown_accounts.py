"""An account no region has issued is NOT_FOUND UNKNOWN_ACCOUNT through the gateway, on every account-keyed call of
the ledger and rewards (which keep no row for an account that never moved points), while an account opened but never
credited reads as zeros; identity is asked once per account (ADR 0612)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from carbon.rewards.v1 import rewards_service_pb2_grpc
from service_kit.accounts import new_account_number
from service_kit.server import RunningServer
from tests.gateway.conftest import REGIONS, start_inprocess_gateway
from tests.gateway.federation import Federation, metadata, refusal


@pytest.fixture
def with_rewards(tmp_path: Path) -> Iterator[tuple[Federation, RunningServer]]:
    fed = Federation(tmp_path, REGIONS, rewards=True, ledgers_in_process=True)
    running = start_inprocess_gateway(fed)
    yield fed, running
    running.stop()
    fed.close()


def account_keyed_calls(fed: Federation, account: str) -> dict[str, tuple[Callable[..., Any], Any, str]]:
    """Each account-keyed ledger and rewards method served on the gateway: (stub method, request, account field)."""
    ledger = ledger_service_pb2_grpc.LedgerServiceStub(fed.gateway_channel())
    rewards = rewards_service_pb2_grpc.RewardsServiceStub(fed.gateway_channel())
    now = datetime.now(UTC)
    return {
        "GetBalance": (ledger.GetBalance, lpb.GetBalanceRequest(account=account), "account"),
        "ListStatementEntries": (
            ledger.ListStatementEntries,
            lpb.ListStatementEntriesRequest(account=account),
            "account",
        ),
        "ListLots": (ledger.ListLots, lpb.ListLotsRequest(account=account), "account"),
        "ListExpiringPoints": (ledger.ListExpiringPoints, lpb.ListExpiringPointsRequest(account=account), "account"),
        "GetMonthlySummary": (
            ledger.GetMonthlySummary,
            lpb.GetMonthlySummaryRequest(account=account, year=now.year, month=now.month),
            "account",
        ),
        "Redeem": (
            rewards.Redeem,
            rpb.RedeemRequest(request_id="redeem-unknown-1", account_number=account, reward_id="r1"),
            "account_number",
        ),
        "ListVouchers": (rewards.ListVouchers, rpb.ListVouchersRequest(account_number=account), "account_number"),
        "Donate": (
            rewards.Donate,
            rpb.DonateRequest(request_id="donate-unknown-1", account_number=account, project_id="p1", amount_points=10),
            "account_number",
        ),
        "RecommendRewards": (
            rewards.RecommendRewards,
            rpb.RecommendRewardsRequest(account_number=account, region_code="330000"),
            "account_number",
        ),
    }


def test_every_account_keyed_ledger_and_rewards_call_of_an_unknown_account_is_not_found_with_the_field_named(
    with_rewards: tuple[Federation, RunningServer],
) -> None:
    fed, _ = with_rewards
    unknown = new_account_number("330000")
    for name, (method, request, field) in account_keyed_calls(fed, unknown).items():
        code, reason, meta = refusal(functools.partial(method, request, metadata=metadata("zj"), timeout=10))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_ACCOUNT"), name
        assert (meta["field"], meta["account_number"]) == (field, unknown), name


def test_bad_input_naming_an_unknown_account_is_invalid_argument_first(
    federation: Federation, gateway: RunningServer
) -> None:
    ledger = ledger_service_pb2_grpc.LedgerServiceStub(federation.gateway_channel())
    request = lpb.ListStatementEntriesRequest(account=new_account_number("330000"))
    request.start_time.seconds = -62_135_596_801  # before 0001-01-01
    code, _, meta = refusal(lambda: ledger.ListStatementEntries(request, metadata=metadata("zj"), timeout=10))
    assert (code, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "start_time.seconds")


def test_an_account_opened_but_never_credited_reads_as_zeros_not_as_unknown(
    federation: Federation, gateway: RunningServer
) -> None:
    opened = federation.open_account("330000")
    ledger = ledger_service_pb2_grpc.LedgerServiceStub(federation.gateway_channel())
    balance = ledger.GetBalance(lpb.GetBalanceRequest(account=opened), metadata=metadata("zj"), timeout=10).balance
    assert (balance.account, balance.available_points, balance.held_points) == (opened, 0, 0)
    lots = ledger.ListLots(lpb.ListLotsRequest(account=opened), metadata=metadata("zj"), timeout=10)
    assert list(lots.lots) == []


def test_identity_is_asked_once_per_account_and_a_silent_identity_is_unavailable_for_accounts_not_yet_seen(
    federation: Federation, gateway: RunningServer
) -> None:
    seen, unseen = federation.open_account("330000"), federation.open_account("330000")
    federation.earn("330000", seen, 40)
    ledger = ledger_service_pb2_grpc.LedgerServiceStub(federation.gateway_channel())
    ledger.GetBalance(lpb.GetBalanceRequest(account=seen), metadata=metadata("zj"), timeout=10)
    federation.stop_identity("330000")
    # Known to exist: the gateway does not ask identity again, so the read needs only the ledger.
    balance = ledger.GetBalance(lpb.GetBalanceRequest(account=seen), metadata=metadata("zj"), timeout=10).balance
    assert balance.available_points == 40
    # Not seen yet: without identity the gateway cannot tell it from an unknown number, and says so retryably.
    request = lpb.GetBalanceRequest(account=unseen)
    code, reason, meta = refusal(lambda: ledger.GetBalance(request, metadata=metadata("zj"), timeout=10))
    assert (code, reason, meta["region"]) == (grpc.StatusCode.UNAVAILABLE, "REGION_UNAVAILABLE", "330000")


def test_the_gateways_own_account_keyed_methods_answer_the_same_for_an_unknown_account(
    federation: Federation, gateway: RunningServer
) -> None:
    unknown = new_account_number("330000")
    stub = federation.gateway()
    listing = gw.ListCrossRegionTransfersRequest(account_number=unknown)
    code, reason, meta = refusal(lambda: stub.ListCrossRegionTransfers(listing, metadata=metadata("zj"), timeout=10))
    assert (code, reason, meta["field"]) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_ACCOUNT", "account_number")
    entry = gw.GetDirectoryEntryRequest(account_number=unknown)
    code, reason, meta = refusal(lambda: stub.GetDirectoryEntry(entry, metadata=metadata("zj"), timeout=10))
    assert (code, reason, meta["field"]) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_ACCOUNT", "account_number")
    opened = federation.open_account("330000")
    listing = gw.ListCrossRegionTransfersRequest(account_number=opened)
    assert list(stub.ListCrossRegionTransfers(listing, metadata=metadata("zj"), timeout=10).transfers) == []
