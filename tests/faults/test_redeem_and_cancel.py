"""kill -9 during redeem and cancel: a real `python -m rewards_svc` dies at each crash point (CARBON_TEST_CRASH_AT),
a real `python -m ledger_svc` dies after storing a Hold, a CommitHold or a refund and before answering, and either
is killed with SIGKILL while redemptions and cancels run; after restarts and recovery the books agree
(tests/faults/books.py)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine

from carbon.rewards.v1 import rewards_service_pb2 as pb
from carbon.rewards.v1 import rewards_service_pb2_grpc as pb_grpc
from ledger_svc.server import CRASH_EXIT_CODE as LEDGER_CRASH_EXIT_CODE
from rewards_svc.server import CRASH_EXIT_CODE
from service_kit.accounts import new_account_number
from service_kit.db import make_engine
from tests.faults.books import assert_rewards_agree_with_the_ledger
from tests.gateway.federation import Federation, wait_for
from tests.ports import free_port
from tests.rewards.conftest import Platform
from tests.rewards.test_crash import start_rewards, wait_ready
from tests.service_identities import TRUST

pytestmark = pytest.mark.faults

REGION = "310000"
REWARD = "shanghai-health-check"  # 7200 points, counted stock, one per account and month
PRICE = 7200


class Region:
    """One region: a ledger (a process where the test kills it), a rewards process (restartable, crash hooks), their
    books."""

    def __init__(self, root: Path, database_url: str = "", ledger_in_process: bool = False) -> None:
        # A test that never kills the ledger serves it from the test process (ADR 0020): a process start costs more
        # CPU than such a test's own work.
        self.federation = Federation(root, [REGION], ledgers_in_process=ledger_in_process)
        self.database_url = database_url or f"sqlite:///{root / 'rewards.db'}"
        self.port = free_port()  # below the ephemeral range: no client socket takes it while rewards restarts
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.earned: dict[str, int] = {}
        self._engine: Engine | None = None

    @property
    def ledger(self) -> object:
        return self.federation.ledger(REGION)

    def start_rewards(self, crash_at: str = "", **extra: str) -> pb_grpc.RewardsServiceStub:
        self.stop_rewards()
        platform = Platform(REGION, f"127.0.0.1:{self.federation.ledger_ports[REGION]}", "", None, None, True)  # type: ignore[arg-type]
        self.process = start_rewards(
            platform,
            self.database_url,
            self.port,
            crash_at,
            CARBON_RECOVERY_MIN_AGE_S="0",
            CARBON_LEDGER_DEADLINE_S="10",  # only a killed ledger makes a call fail here
            CARBON_LOG_LEVEL="WARNING",
            **extra,
        )
        wait_ready(self.process)
        self.channel = TRUST.allowed_channel(f"127.0.0.1:{self.port}", REGION)
        return pb_grpc.RewardsServiceStub(self.channel)

    def died_at_its_crash_point(self) -> bool:
        assert self.process is not None
        return self.process.wait(20) == CRASH_EXIT_CODE

    def stop_rewards(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def funded(self, points: int) -> str:
        account = new_account_number(REGION)
        self.federation.earn(REGION, account, points)
        self.earned[account] = points
        return account

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def assert_books(self) -> None:
        assert_rewards_agree_with_the_ledger(self.engine(), self.federation.ledger(REGION), self.earned)

    def close(self) -> None:
        self.stop_rewards()
        if self._engine is not None:
            self._engine.dispose()
        self.federation.close()


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    """For the tests that kill the ledger: a `python -m ledger_svc` process."""
    made = Region(tmp_path)
    yield made
    made.close()


@pytest.fixture
def rewards_region(tmp_path: Path) -> Iterator[Region]:
    """For the tests that kill rewards only: the ledger in-process."""
    made = Region(tmp_path, ledger_in_process=True)
    yield made
    made.close()


@pytest.fixture
def region_on_postgres(tmp_path: Path, postgres_url: str) -> Iterator[Region]:
    """Rewards on PostgreSQL: concurrent redemptions, retries and recovery take real row locks there. The ledger
    stays a process even where rewards is killed: the kill must meet requests in flight, and how long they take
    depends on where the ledger runs."""
    made = Region(tmp_path, postgres_url)
    yield made
    made.close()


def redeem_request(request_id: str, account: str) -> pb.RedeemRequest:
    return pb.RedeemRequest(request_id=request_id, account_number=account, reward_id=REWARD, region_code=REGION)


def settled(call: object, unavailable: list[str] | None = None, deadline_s: float = 30) -> object:
    """Retries `call` (the same request) while it answers UNAVAILABLE (noted in `unavailable`); its answer, or the
    final error."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return call()  # type: ignore[operator]
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > end:
                return error
            if unavailable is not None:
                unavailable.append(error.details() or "")
            time.sleep(0.1)


@pytest.mark.parametrize("step", ["after_hold", "after_vouchers"])
def test_rewards_killed_mid_redemption_finishes_it_once(rewards_region: Region, step: str) -> None:
    region = rewards_region
    zhang, wang = region.funded(PRICE), region.funded(PRICE)
    rewards = region.start_rewards(crash_at=step)
    with pytest.raises(grpc.RpcError):
        rewards.Redeem(redeem_request("zhang-1", zhang), timeout=20)
    assert region.died_at_its_crash_point()
    rewards = region.start_rewards()
    done = rewards.Redeem(redeem_request("zhang-1", zhang), timeout=20).redemption
    assert done.state == pb.REDEMPTION_STATE_COMPLETED and len(done.vouchers) == 1
    again = rewards.Redeem(redeem_request("wang-1", wang), timeout=20).redemption
    cancelled = rewards.CancelVoucher(
        pb.CancelVoucherRequest(request_id="c-2", code=again.vouchers[0].code, reason="moved"), timeout=20
    )
    assert cancelled.refunded_points == PRICE
    region.assert_books()


def test_rewards_killed_after_a_cancel_is_claimed_finishes_the_refund_once(rewards_region: Region) -> None:
    region = rewards_region
    li = region.funded(PRICE)
    rewards = region.start_rewards(crash_at="after_cancel_claim")
    code = rewards.Redeem(redeem_request("li-1", li), timeout=20).redemption.vouchers[0].code
    with pytest.raises(grpc.RpcError):
        rewards.CancelVoucher(pb.CancelVoucherRequest(request_id="c-1", code=code, reason="ill"), timeout=20)
    assert region.died_at_its_crash_point()
    rewards = region.start_rewards()  # the recovery pass at start posts the refund

    def voucher_state() -> int:
        return rewards.ListVouchers(pb.ListVouchersRequest(account_number=li), timeout=10).vouchers[0].state

    wait_for(lambda: region.federation.balance(REGION, li).total_points == PRICE, what="the refund")
    assert voucher_state() == pb.VOUCHER_STATE_CANCELLED
    with pytest.raises(grpc.RpcError) as refused:
        rewards.UseVoucher(pb.UseVoucherRequest(request_id="u-1", code=code, merchant_id="clinic"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    answer = rewards.CancelVoucher(pb.CancelVoucherRequest(request_id="c-1", code=code, reason="ill"), timeout=20)
    assert answer.refunded_points == PRICE  # the caller's retry gets the finished cancel
    region.assert_books()


def kill_rewards_and_restart(region: Region) -> None:
    """SIGKILL the rewards process wherever it is, then start it again on the same port."""
    assert region.process is not None
    region.process.kill()
    region.process.wait(10)
    region.start_rewards()


def kill_ledger_and_restart(region: Region) -> None:
    region.federation.kill_ledger(REGION)
    time.sleep(0.6)
    region.federation.start_ledger(REGION)


@pytest.mark.postgres
@pytest.mark.parametrize("kill", [kill_ledger_and_restart, kill_rewards_and_restart], ids=["ledger", "rewards"])
def test_a_process_killed_during_redemptions_and_cancels_loses_and_creates_nothing(
    region_on_postgres: Region, kill: Callable[[Region], None]
) -> None:
    region = region_on_postgres
    accounts = [region.funded(PRICE) for _ in range(12)]
    region.start_rewards()
    channel = TRUST.allowed_channel(f"127.0.0.1:{region.port}", REGION)  # the customers' own: outlives a restart
    rewards = pb_grpc.RewardsServiceStub(channel)
    unavailable: list[str] = []
    first_done = threading.Event()

    def customer(index: int, account: str) -> None:
        """Redeems; every other customer then cancels. Each retries its own request while the ledger is away."""
        time.sleep(0.1 * index)  # arrivals spread over the kill and the restart
        redeemed = settled(lambda: rewards.Redeem(redeem_request(f"r-{index}", account), timeout=10), unavailable)
        first_done.set()
        if isinstance(redeemed, grpc.RpcError) or index % 2:
            return
        code = redeemed.redemption.vouchers[0].code  # type: ignore[attr-defined]
        request = pb.CancelVoucherRequest(request_id=f"c-{index}", code=code, reason="changed plans")
        settled(lambda: rewards.CancelVoucher(request, timeout=10), unavailable)

    threads = [threading.Thread(target=customer, args=item) for item in enumerate(accounts)]
    for thread in threads:
        thread.start()
    assert first_done.wait(20)
    kill(region)
    for thread in threads:
        thread.join(60)
    channel.close()
    assert unavailable, "the kill met no request"
    # Whatever the kill left halfway, recovery (every second here) settles it.
    wait_for(lambda: _all_settled(region), timeout_s=30, what="recovery to settle every redemption and cancel")
    region.assert_books()


def _all_settled(region: Region) -> bool:
    from tests.faults.books import rewards_books

    return all(rewards_books(region.engine(), account).unsettled == 0 for account in region.earned)


def ledger_dies_after(region: Region, point: str) -> None:
    """The region's ledger restarted with a crash point: its next such call commits, then the process dies."""
    region.federation.kill_ledger(REGION)
    region.federation.start_ledger(REGION, crash_at=point)


def ledger_died_and_restarted(region: Region) -> None:
    process = region.federation.ledgers[REGION]
    assert process is not None and process.wait(20) == LEDGER_CRASH_EXIT_CODE
    region.federation.start_ledger(REGION)


# A redemption's one Hold commits at once (ADR 0303), sent in a HoldBatch call (ADR 0305) unless the setting sends it
# alone; CommitHold is sent apart only on the two-step path (rows from before, or CARBON_REDEEM_COMMIT_AT_ONCE=0).
@pytest.mark.parametrize(
    ("point", "at_once", "batch"),
    [("ledger_after_hold_batch", "1", "1"), ("ledger_after_hold", "1", "0"), ("ledger_after_commit", "0", "1")],
)
def test_the_ledger_killed_after_storing_a_redemption_step_before_answering(
    region: Region, point: str, at_once: str, batch: str
) -> None:
    zhao = region.funded(PRICE)
    rewards = region.start_rewards(CARBON_REDEEM_COMMIT_AT_ONCE=at_once, CARBON_REDEEM_HOLD_BATCH=batch)
    ledger_dies_after(region, point)
    with pytest.raises(grpc.RpcError) as pending:
        rewards.Redeem(redeem_request("zhao-1", zhao), timeout=20)
    assert pending.value.code() == grpc.StatusCode.UNAVAILABLE
    ledger_died_and_restarted(region)
    answer = settled(lambda: rewards.Redeem(redeem_request("zhao-1", zhao), timeout=20))  # the customer retries
    assert isinstance(answer, pb.RedeemResponse), answer
    done = answer.redemption
    assert done.state == pb.REDEMPTION_STATE_COMPLETED and len(done.vouchers) == 1
    region.assert_books()


def test_the_ledger_killed_after_posting_a_refund_before_answering(region: Region) -> None:
    # Issue 14, defect 1 with a real process death: the refund is in the ledger, the caller heard nothing.
    qian = region.funded(PRICE)
    rewards = region.start_rewards()
    code = rewards.Redeem(redeem_request("qian-1", qian), timeout=20).redemption.vouchers[0].code
    ledger_dies_after(region, "ledger_after_refund")
    cancel = pb.CancelVoucherRequest(request_id="c-1", code=code, reason="moved to Suzhou")
    with pytest.raises(grpc.RpcError) as pending:
        rewards.CancelVoucher(cancel, timeout=20)
    assert pending.value.code() == grpc.StatusCode.UNAVAILABLE
    ledger_died_and_restarted(region)
    # Recovery (every second, no minimum age here) finishes the cancel with the stored reason.
    wait_for(lambda: _all_settled(region), timeout_s=30, what="recovery to finish the cancel")
    with pytest.raises(grpc.RpcError) as refused:
        rewards.UseVoucher(pb.UseVoucherRequest(request_id="u-1", code=code, merchant_id="clinic"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    answer = settled(lambda: rewards.CancelVoucher(cancel, timeout=20))
    assert isinstance(answer, pb.CancelVoucherResponse) and answer.refunded_points == PRICE, answer
    region.assert_books()
