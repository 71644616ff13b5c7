"""Concurrent retries of one Redeem on real PostgreSQL (issue 14, defect 2): reserve, unwind and finish take the
reward, redemption and voucher rows in one order (docs/adr/0302), so no deadlock is answered as INTERNAL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial

import pytest

from rewards_svc.domain.redemption import RedemptionState
from rewards_svc.server import RewardsServices, build_services
from service_kit import db
from service_kit.errors import DomainError, FailedPrecondition, Unavailable
from service_kit.settings import Settings
from tests.rewards.conftest import ManualClock, funded
from tests.rewards.rewards_fake_ledger import FakeLedger

pytestmark = pytest.mark.postgres

RETRIES = 16
REWARD = "shanghai-health-check"  # counted stock: a redemption locks the reward row


@pytest.fixture
def on_postgres(postgres_url: str, ledger: FakeLedger, clock: ManualClock) -> Iterator[RewardsServices]:
    engine = db.make_engine(postgres_url, pool_size=RETRIES + 4)
    db.migrate("rewards_svc", engine)
    yield build_services(Settings(service="rewards_svc", region_code="310000"), engine, ledger=ledger, clock=clock)
    engine.dispose()


def all_at_once(call: Callable[[], object], times: int) -> list[object]:
    """Runs `call` in `times` threads released together; each one's result or the exception it raised."""
    start = threading.Barrier(times)
    answers: list[object] = []

    def run() -> None:
        start.wait()
        try:
            answers.append(call())
        except Exception as error:
            answers.append(error)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def unexpected(answers: list[object]) -> list[object]:
    """Anything but a result or a domain error: what a client would see as INTERNAL."""
    return [answer for answer in answers if isinstance(answer, Exception) and not isinstance(answer, DomainError)]


def left_pending(service: RewardsServices, ledger: FakeLedger, request_id: str, account: str) -> None:
    ledger.down = True
    with pytest.raises(Unavailable):
        service.redemptions.redeem(request_id, account, REWARD, 1, "310000")
    ledger.down = False


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_retries_that_unwind_a_pending_redeem_never_deadlock(
    on_postgres: RewardsServices, ledger: FakeLedger, clock: ManualClock, round_: int
) -> None:
    # The hold never landed and the customer stopped waiting: each retry's resolve unwinds (stock back, FAILED)
    # while the others reserve under the same request id.
    account = funded(ledger, "310000", 7200)
    left_pending(on_postgres, ledger, "r1", account)
    clock.advance(hours=1)
    answers = all_at_once(lambda: on_postgres.redemptions.redeem("r1", account, REWARD, 1, "310000"), RETRIES)
    assert unexpected(answers) == []
    assert {answer.reason for answer in answers if isinstance(answer, FailedPrecondition)} == {"HOLD_NOT_PLACED"}
    redemption = on_postgres.redemptions.find(request_id="r1")
    assert redemption is not None and redemption.state == RedemptionState.FAILED
    assert on_postgres.catalog.get_reward(REWARD).stock == 2000
    assert ledger.available(account) == 7200


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_retries_that_finish_a_pending_redeem_make_one_redemption(
    on_postgres: RewardsServices, ledger: FakeLedger, round_: int
) -> None:
    account = funded(ledger, "310000", 7200)
    left_pending(on_postgres, ledger, "r1", account)
    answers = all_at_once(lambda: on_postgres.redemptions.redeem("r1", account, REWARD, 1, "310000"), RETRIES)
    assert unexpected(answers) == []
    redemption = on_postgres.redemptions.find(request_id="r1")
    assert redemption is not None and redemption.state == RedemptionState.COMPLETED
    assert len(redemption.vouchers) == 1 and ledger.balances[account] == 0
    assert on_postgres.catalog.get_reward(REWARD).stock == 1999


def test_cancels_and_redemptions_of_one_reward_run_side_by_side(
    on_postgres: RewardsServices, ledger: FakeLedger
) -> None:
    # Cancel returns stock (voucher, then reward) while redemptions take it (reward, then redemption, then voucher).
    accounts = [funded(ledger, "310000", 7200) for _ in range(RETRIES)]
    codes = [
        on_postgres.redemptions.redeem(f"first-{index}", account, REWARD, 1, "310000").vouchers[0].code
        for index, account in enumerate(accounts)
    ]
    others = [funded(ledger, "310000", 7200) for _ in range(RETRIES)]
    calls: list[Callable[[], object]] = []
    for index, (account, code) in enumerate(zip(others, codes, strict=True)):
        calls.append(partial(on_postgres.vouchers.cancel_voucher, f"c-{index}", code, ""))
        calls.append(partial(on_postgres.redemptions.redeem, f"second-{index}", account, REWARD, 1, "310000"))
    pending = iter(calls)
    lock = threading.Lock()

    def next_call() -> object:
        with lock:
            call = next(pending)
        return call()

    answers = all_at_once(next_call, len(calls))
    assert unexpected(answers) == []
    assert on_postgres.catalog.get_reward(REWARD).stock == 2000 - RETRIES
    assert all(ledger.balances[account] == 7200 for account in accounts)  # refunded
    assert all(ledger.balances[account] == 0 for account in others)  # redeemed
