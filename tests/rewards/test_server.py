"""Rewards and its ledger as real gRPC servers: the worked cases of DOMAIN.md, errors as statuses with reasons,
vouchers used once, cancellation back to the original lots, and the stock race on real PostgreSQL; and the server's
lifecycle (the recovery thread it starts stops with it, its pool has a connection per worker)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from carbon.ledger.v1 import ledger_service_pb2 as ledger_pb2
from carbon.rewards.v1 import rewards_service_pb2 as pb
from rewards_svc.server import pooled_engine, registrations
from service_kit import db
from service_kit.accounts import new_account_number
from service_kit.server import start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.rewards.conftest import Platform, StartPlatform


def redeem(platform: Platform, account: str, reward_id: str, quantity: int = 1) -> pb.Redemption:
    request = pb.RedeemRequest(
        request_id=uuid.uuid4().hex,
        account_number=account,
        reward_id=reward_id,
        quantity=quantity,
        region_code=platform.region,
    )
    return platform.rewards.Redeem(request, timeout=10).redemption


def refused(call: object, request: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)  # type: ignore[operator]
    details = error_details(caught.value)
    return details.code, details.reason


def test_ms_zhang_in_shanghai_redeems_the_health_check(start_platform: StartPlatform) -> None:
    shanghai = start_platform("310000")
    zhang = new_account_number("310000")
    for _month in range(6):
        shanghai.fund(zhang, 1200)
    redemption = redeem(shanghai, zhang, "shanghai-health-check")
    assert redemption.state == pb.REDEMPTION_STATE_COMPLETED
    assert redemption.price_points == 7200
    assert [v.state for v in redemption.vouchers] == [pb.VOUCHER_STATE_ISSUED]
    assert len(redemption.vouchers[0].code) == 24
    assert shanghai.available(zhang) == 0
    listed = shanghai.rewards.ListVouchers(pb.ListVouchersRequest(account_number=zhang), timeout=10).vouchers
    assert [v.code for v in listed] == [redemption.vouchers[0].code]


def test_mr_li_in_beijing_redeems_a_supermarket_voucher_then_the_bus_pass(start_platform: StartPlatform) -> None:
    beijing = start_platform("110000")
    li = new_account_number("110000")
    beijing.fund(li, 22_000)
    voucher = redeem(beijing, li, "supermarket-voucher", quantity=10)
    assert voucher.state == pb.REDEMPTION_STATE_COMPLETED
    assert [(v.price_points, v.state) for v in voucher.vouchers] == [(10_000, pb.VOUCHER_STATE_ISSUED)]
    assert beijing.available(li) == 12_000
    bus_pass = redeem(beijing, li, "beijing-bus-pass")
    assert bus_pass.state == pb.REDEMPTION_STATE_COMPLETED
    assert beijing.available(li) == 0
    code, reason = refused(
        beijing.rewards.Redeem,
        pb.RedeemRequest(request_id="again", account_number=li, reward_id="beijing-bus-pass", region_code="110000"),
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_REACHED")


def test_the_bus_pass_is_not_redeemable_in_shanghai(start_platform: StartPlatform) -> None:
    shanghai = start_platform("310000")
    account = new_account_number("310000")
    shanghai.fund(account, 20_000)
    request = pb.RedeemRequest(
        request_id="r1", account_number=account, reward_id="beijing-bus-pass", region_code="310000"
    )
    assert refused(shanghai.rewards.Redeem, request) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_AVAILABLE_IN_REGION")
    assert shanghai.available(account) == 20_000


def test_insufficient_points_keeps_the_ledger_reason(start_platform: StartPlatform) -> None:
    shanghai = start_platform("310000")
    account = new_account_number("310000")
    shanghai.fund(account, 7000)
    request = pb.RedeemRequest(
        request_id="r1", account_number=account, reward_id="shanghai-health-check", region_code="310000"
    )
    assert refused(shanghai.rewards.Redeem, request) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")
    reward = shanghai.rewards.GetReward(pb.GetRewardRequest(reward_id="shanghai-health-check"), timeout=10).reward
    assert reward.stock == 2000


def test_bad_input_is_invalid_argument_naming_the_field(start_platform: StartPlatform) -> None:
    platform = start_platform("330000")
    with pytest.raises(grpc.RpcError) as caught:
        platform.rewards.Redeem(pb.RedeemRequest(request_id="r1", account_number="42", reward_id="x"), timeout=10)
    details = error_details(caught.value)
    assert (details.code, details.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "account_number")


def test_a_voucher_is_used_once_over_grpc(start_platform: StartPlatform) -> None:
    platform = start_platform("330000")
    account = new_account_number("330000")
    platform.fund(account, 500)
    code = redeem(platform, account, "museum-free-reservation").vouchers[0].code
    used = platform.rewards.UseVoucher(pb.UseVoucherRequest(request_id="u1", code=code, merchant_id="m"), timeout=10)
    assert used.voucher.state == pb.VOUCHER_STATE_USED
    second = pb.UseVoucherRequest(request_id="u2", code=code, merchant_id="m")
    assert refused(platform.rewards.UseVoucher, second) == (grpc.StatusCode.FAILED_PRECONDITION, "VOUCHER_ALREADY_USED")


def test_cancel_returns_points_to_their_original_lots(start_platform: StartPlatform) -> None:
    platform = start_platform("330000")
    account = new_account_number("330000")
    platform.fund(account, 3000)
    lots_before = (
        platform.ledger.ListLots(ledger_pb2.ListLotsRequest(account=account), timeout=10).lots
        if platform.real_ledger
        else []
    )
    code = redeem(platform, account, "cinema-ticket-reduction").vouchers[0].code
    assert platform.available(account) == 1000
    response = platform.rewards.CancelVoucher(pb.CancelVoucherRequest(request_id="c1", code=code), timeout=10)
    assert (response.voucher.state, response.refunded_points) == (pb.VOUCHER_STATE_CANCELLED, 2000)
    assert platform.available(account) == 3000
    if platform.real_ledger:
        lots_after = platform.ledger.ListLots(ledger_pb2.ListLotsRequest(account=account), timeout=10).lots
        assert [(lot.expires_at, lot.remaining_points) for lot in lots_after] == [
            (lot.expires_at, lot.remaining_points) for lot in lots_before
        ]


def test_donations_and_recommendations(start_platform: StartPlatform) -> None:
    platform = start_platform("330000")
    account = new_account_number("330000")
    platform.fund(account, 5000)
    donated = platform.rewards.Donate(
        pb.DonateRequest(request_id="d1", account_number=account, project_id="trees", amount_points=2000), timeout=10
    )
    assert (donated.units, donated.project.units_region) == (2, 2)
    recommended = platform.rewards.RecommendRewards(
        pb.RecommendRewardsRequest(account_number=account, max_results=2), timeout=10
    )
    assert recommended.available_points == 3000
    assert [(r.reward.reward_id, r.missing_points) for r in recommended.recommendations] == [
        ("scenic-spot-half-price", 0),
        ("cinema-ticket-reduction", 0),
        ("green-appliance-subsidy", 2000),  # the dearer ones are local to Beijing, Shanghai or Guangzhou
    ]


@pytest.mark.postgres
def test_a_hundred_redemptions_of_ten_in_stock_give_exactly_ten_vouchers(
    start_platform: StartPlatform, postgres_url: str, second_postgres_url: str
) -> None:
    platform = start_platform("330000", ledger_url=second_postgres_url, rewards_url=postgres_url)
    created = pb.Reward(
        reward_id="limited-edition",
        name_en="Limited edition",
        category=pb.REWARD_CATEGORY_CULTURE_TOURISM,
        price_points=100,
        provider="Test",
        stock=10,
        voucher_lifetime_days=30,
    )
    platform.rewards.CreateReward(pb.CreateRewardRequest(request_id="c1", reward=created), timeout=10)
    accounts = [new_account_number("330000") for _ in range(100)]
    for account in accounts:
        platform.fund(account, 100)

    def attempt(account: str) -> str:
        try:
            return pb.RedemptionState.Name(redeem(platform, account, "limited-edition").state)
        except grpc.RpcError as error:
            return error_details(error).reason

    with ThreadPoolExecutor(max_workers=100) as pool:
        outcomes = list(pool.map(attempt, accounts))
    assert outcomes.count("REDEMPTION_STATE_COMPLETED") == 10
    assert outcomes.count("OUT_OF_STOCK") == 90
    vouchers = [
        platform.rewards.ListVouchers(pb.ListVouchersRequest(account_number=a), timeout=10).vouchers for a in accounts
    ]
    assert sum(len(v) for v in vouchers) == 10
    assert sum(platform.available(a) for a in accounts) == 90 * 100
    reward = platform.rewards.GetReward(pb.GetRewardRequest(reward_id="limited-edition"), timeout=10).reward
    assert reward.stock == 0


def test_retried_mutations_answer_as_the_first_time_over_grpc(start_platform: StartPlatform) -> None:
    platform = start_platform("330000")
    account = new_account_number("330000")
    platform.fund(account, 500)
    code = redeem(platform, account, "museum-free-reservation").vouchers[0].code
    use = pb.UseVoucherRequest(request_id="u1", code=code, merchant_id="m")
    first = platform.rewards.UseVoucher(use, timeout=10)
    assert platform.rewards.UseVoucher(use, timeout=10) == first
    other = pb.UseVoucherRequest(request_id="u1", code=code, merchant_id="n")
    assert refused(platform.rewards.UseVoucher, other) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    retire = pb.RetireRewardRequest(request_id="x1", reward_id="museum-free-reservation")
    retired = platform.rewards.RetireReward(retire, timeout=10)
    assert platform.rewards.RetireReward(retire, timeout=10) == retired


def recovery_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "rewards-recovery"]


def test_the_recovery_thread_stops_with_the_server(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'rewards.db'}")
    db.migrate("rewards_svc", engine)
    settings = Settings(
        service="rewards_svc", region_code="330000", port=0, extra={"CARBON_LEDGER_ADDRESS": "127.0.0.1:1"}
    )
    before = set(recovery_threads())
    running = start_server(settings, registrations(settings, engine))
    started = [thread for thread in recovery_threads() if thread not in before]
    assert len(started) == 1 and started[0].is_alive()
    running.stop()
    assert not started[0].is_alive()
    engine.dispose()


def test_on_postgresql_the_pool_has_a_connection_for_every_worker(postgres_url: str) -> None:
    settings = Settings(service="rewards_svc", max_workers=24)
    small = db.make_engine(postgres_url, pool_size=10)
    pooled = pooled_engine(settings, small)
    assert pooled is not small and pooled.pool.size() == 24  # type: ignore[attr-defined]
    assert pooled.url == small.url
    sized = db.make_engine(postgres_url, pool_size=24)
    assert pooled_engine(settings, sized) is sized
    for engine in (pooled, small, sized):
        engine.dispose()
