"""kill -9 during cross-region transfers (tests/gateway/federation.py: real ledger_svc processes, the gateway as a
process): the gateway dies at each step of a transfer (the ledgers served in-process meanwhile), and each region's
ledger, a real process there, is SIGKILLed while transfers run.
After restarts every account holds earned - sent + received, nothing stays held, the clearing accounts sum to 0,
and both journals verify and conserve."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from tests.faults.books import assert_journal_sound
from tests.gateway.federation import Federation, metadata
from tests.gateway.test_faults import COMMITTED, finished, funded, transfer_dies_with_the_gateway

pytestmark = pytest.mark.faults

REGIONS = ("330000", "110000")


def _federation(tmp_path: Path, ledgers_in_process: bool) -> Iterator[Federation]:
    federation = Federation(tmp_path, list(REGIONS), ledgers_in_process=ledgers_in_process)
    yield federation
    federation.close()


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    """The ledgers in-process (still on their own ports): only the gateway process is killed."""
    yield from _federation(tmp_path, ledgers_in_process=True)


@pytest.fixture
def fed_with_ledger_processes(tmp_path: Path) -> Iterator[Federation]:
    yield from _federation(tmp_path, ledgers_in_process=False)


def assert_cross_region_books(fed: Federation, expected: dict[tuple[str, str], int]) -> None:
    """Each (region, account) holds what is expected, all of it available; clearing sums to 0; journals sound."""
    for (code, account), points in expected.items():
        balance = fed.balance(code, account)
        assert (balance.total_points, balance.available_points) == (points, points), (code, account, balance)
    assert fed.clearing_sum() == 0
    for code in REGIONS:
        assert_journal_sound(fed.ledger(code))


def assert_each_ended_once(fed: Federation, pairs: list[tuple[str, str]], prefix: str, answers: object) -> None:
    """Transfer i (id prefix + i, 100 x (i + 1) points over pair i, from 1,000 funded) ended COMMITTED or RELEASED,
    and both regions' books hold exactly what the ended transfers moved. `answers` is shown when a transfer did not
    end."""
    expected: dict[tuple[str, str], int] = {}
    for index, (source, target) in enumerate(pairs):
        state = finished(fed, f"{prefix}{index}").state
        assert state in (COMMITTED, gw.CROSS_REGION_TRANSFER_STATE_RELEASED), (index, answers)
        moved = 100 * (index + 1) if state == COMMITTED else 0
        expected[("330000", source)] = 1_000 - moved
        expected[("110000", target)] = moved
    assert_cross_region_books(fed, expected)


def batch_items(
    fed: Federation, pairs: list[tuple[str, str]], prefix: str
) -> list[gw.CreateCrossRegionTransferRequest]:
    """Transfer i of 100 × (i + 1) points over pair i, id prefix + i, each with the resident's authorization."""
    return [
        gw.CreateCrossRegionTransferRequest(
            transfer_id=f"{prefix}{index}", from_account=source, to_account=target, amount_points=100 * (index + 1),
            resident_authorization=fed.authorize(
                "cross_region_transfer", source, target, f"{prefix}{index}", 100 * (index + 1)
            ),
        )
        for index, (source, target) in enumerate(pairs)
    ]  # fmt: skip


@pytest.mark.parametrize("crash_at", ["after_hold", "after_decision", "after_credit", "before_commit"])
def test_the_gateway_killed_at_each_step_moves_the_points_once(fed: Federation, crash_at: str) -> None:
    source, target = funded(fed, 1_000)
    fed.start_gateway(crash_at=crash_at)
    transfer_dies_with_the_gateway(fed, "x1", source, target, 400)
    fed.start_gateway()
    assert finished(fed, "x1").state == COMMITTED
    assert fed.transfer("x2", source, target, 100).state == COMMITTED  # the restarted gateway carries on
    assert_cross_region_books(fed, {("330000", source): 500, ("110000", target): 500})


@pytest.mark.parametrize("crash_at", ["after_hold", "after_decision", "after_credit"])
def test_the_gateway_killed_mid_batch_finishes_every_transfer_once(
    tmp_path: Path, postgres_url: str, crash_at: str
) -> None:
    fed = Federation(tmp_path, list(REGIONS), gateway_db_url=postgres_url, ledgers_in_process=True)
    try:
        pairs = [funded(fed, 1_000) for _ in range(5)]
        fed.start_gateway(crash_at=crash_at)
        items = batch_items(fed, pairs, "m")
        with pytest.raises(grpc.RpcError):
            fed.gateway().CreateCrossRegionTransfers(
                gw.CreateCrossRegionTransfersRequest(transfers=items), metadata=metadata("zj"), timeout=30
            )
        assert fed.wait_gateway_exit() == 137
        fed.start_gateway()
        expected: dict[tuple[str, str], int] = {}
        for index, (source, target) in enumerate(pairs):
            assert finished(fed, f"m{index}").state == COMMITTED
            expected[("330000", source)] = 1_000 - 100 * (index + 1)
            expected[("110000", target)] = 100 * (index + 1)
        assert_cross_region_books(fed, expected)
    finally:
        fed.close()


@pytest.mark.parametrize("killed", REGIONS)
def test_a_ledger_killed_during_transfers_loses_and_creates_nothing(
    fed_with_ledger_processes: Federation, killed: str
) -> None:
    fed = fed_with_ledger_processes
    pairs = [funded(fed, 1_000) for _ in range(4)]
    fed.start_gateway()
    answers: dict[str, int] = {}

    def send(index: int, source: str, target: str) -> None:
        try:
            answers[f"t{index}"] = fed.transfer(f"t{index}", source, target, 100 * (index + 1)).state
        except grpc.RpcError as error:
            answers[f"t{index}"] = -int(error.code().value[0])

    threads = [threading.Thread(target=send, args=(index, *pair)) for index, pair in enumerate(pairs)]
    for thread in threads:
        thread.start()
    fed.kill_ledger(killed)
    fed.start_ledger(killed)
    for thread in threads:
        thread.join(60)
    assert_each_ended_once(fed, pairs, "t", answers)


@pytest.mark.parametrize("killed", REGIONS)
def test_a_ledger_killed_during_a_batch_loses_and_creates_nothing(
    fed_with_ledger_processes: Federation, killed: str
) -> None:
    """A region's ledger dies while one CreateCrossRegionTransfers call is on its way: each item is answered (in
    progress or final) or the call fails, and every transfer still ends once, COMMITTED or RELEASED, with the books
    balanced."""
    fed = fed_with_ledger_processes
    pairs = [funded(fed, 1_000) for _ in range(6)]
    fed.start_gateway()
    items = batch_items(fed, pairs, "b")
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(
                fed.gateway().CreateCrossRegionTransfers(
                    gw.CreateCrossRegionTransfersRequest(transfers=items), metadata=metadata("zj"), timeout=60
                )
            )
        except grpc.RpcError as error:
            outcome.append(error.code())

    sender = threading.Thread(target=send)
    sender.start()
    fed.kill_ledger(killed)
    fed.start_ledger(killed)
    sender.join(90)
    assert outcome, "the batch call answered"
    assert_each_ended_once(fed, pairs, "b", outcome)
