"""kill -9 at every step of a cross-region transfer, gateway first, then each region's ledger; after a restart every
transfer is complete or fully unwound, exactly once, and every ledger still conserves points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from tests.gateway.federation import Federation, wait_for

COMMITTED = gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
RELEASED = gw.CROSS_REGION_TRANSFER_STATE_RELEASED
UNKNOWN = gw.CROSS_REGION_TRANSFER_STATE_UNKNOWN
FINISHED = (COMMITTED, RELEASED, UNKNOWN)
# A short transfer life, so a hold can run out between the credit and the commit within a test. The hold must still
# be placed with 1.4 s to spare (two call timeouts and margins) for the gateway to decide COMMIT (4 s leaves 2.6 s),
# and its 500 ms calls need ledgers of their own: a ledger served in the test process, sharing the interpreter with
# the test, sometimes missed them on a busy machine and the transfer was put off before the crash point under test.
SHORT_LIFE = {
    "CARBON_GATEWAY_TRANSFER_LIFE_MS": "4000",
    "CARBON_GATEWAY_CALL_TIMEOUT_MS": "500",
    "CARBON_GATEWAY_MARGIN_MS": "200",
}


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    """The regions' ledgers served in-process: these tests kill the gateway, not a ledger mid-call (a ledger that is
    merely down is stopped all the same), and a ledger process costs more CPU to start than the test."""
    federation = Federation(tmp_path, ["330000", "110000"], ledgers_in_process=True)
    yield federation
    federation.close()


@pytest.fixture
def fed_of_processes(tmp_path: Path) -> Iterator[Federation]:
    """Ledger processes, for a test that SIGKILLs one while a transfer is open in it, and for the short-lived
    transfers (SHORT_LIFE), whose 500 ms calls an in-process ledger sometimes missed on a busy machine."""
    federation = Federation(tmp_path, ["330000", "110000"])
    yield federation
    federation.close()


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[Federation]:
    """Ledger stand-ins with crash hooks: ledger_svc has no way to die between storing and answering."""
    federation = Federation(tmp_path, ["330000", "110000"], use_double=True)
    yield federation
    federation.close()


def funded(fed: Federation, points: int) -> tuple[str, str]:
    source, target = fed.open_person(["330000", "110000"])
    fed.earn("330000", source, points)
    return source, target


def transfer_dies_with_the_gateway(fed: Federation, transfer_id: str, source: str, target: str, points: int) -> None:
    with pytest.raises(grpc.RpcError):
        fed.transfer(transfer_id, source, target, points)
    assert fed.wait_gateway_exit() == 137


def finished(fed: Federation, transfer_id: str) -> gw.CrossRegionTransfer:
    def done() -> gw.CrossRegionTransfer | None:
        try:
            transfer = fed.get_transfer(transfer_id)
        except grpc.RpcError:
            return None
        return transfer if transfer.state in FINISHED else None

    result: gw.CrossRegionTransfer = wait_for(done, timeout_s=20, what=f"transfer {transfer_id} to finish")
    return result


def assert_books(fed: Federation, source: str, target: str, source_points: int, target_points: int) -> None:
    assert fed.balance("330000", source).total_points == source_points
    assert fed.balance("110000", target).total_points == target_points
    assert fed.conserved("330000") and fed.conserved("110000")


@pytest.mark.parametrize("crash_at", ["after_hold", "after_decision", "after_credit", "before_commit"])
def test_the_gateway_killed_at_any_step_finishes_the_transfer_once(fed: Federation, crash_at: str) -> None:
    source, target = funded(fed, 1_000)
    fed.start_gateway(crash_at=crash_at)
    transfer_dies_with_the_gateway(fed, "k1", source, target, 400)
    fed.start_gateway()
    assert finished(fed, "k1").state == COMMITTED
    assert fed.transfer("k1", source, target, 400).state == COMMITTED  # a replay after recovery changes nothing
    assert_books(fed, source, target, 600, 400)
    assert fed.clearing_sum() == 0


def test_a_gateway_restarted_under_its_instance_name_takes_back_its_leases_at_once(fed: Federation) -> None:
    source, target = funded(fed, 1_000)
    # A lease of 20.2 s (call timeout + margin): a successor that waited for it to run out would miss the deadline
    # below; the 60 s hold still outlives two such timeouts, so the transfer is decided COMMIT.
    named = {"CARBON_GATEWAY_INSTANCE": "gateway-0", "CARBON_GATEWAY_CALL_TIMEOUT_MS": "20000"}
    fed.start_gateway(crash_at="after_hold", **named)
    transfer_dies_with_the_gateway(fed, "k6", source, target, 400)
    fed.start_gateway(**named)

    def committed() -> bool:
        return bool(fed.get_transfer("k6").state == COMMITTED)

    wait_for(committed, timeout_s=15, what="the transfer to finish before its lease would have run out")
    assert_books(fed, source, target, 600, 400)
    assert fed.clearing_sum() == 0


@pytest.mark.parametrize(
    ("region", "crash_at"),
    [("330000", "ledger_after_hold"), ("110000", "ledger_after_post"), ("330000", "ledger_after_commit")],
)
def test_a_ledger_killed_before_it_answers_is_asked_again_after_restart(
    hooked: Federation, region: str, crash_at: str
) -> None:
    fed = hooked
    source, target = funded(fed, 1_000)
    fed.kill_ledger(region)
    fed.start_ledger(region, crash_at=crash_at)
    fed.start_gateway()
    fed.transfer("k2", source, target, 250)  # the ledger dies mid-call; the gateway keeps the transfer open
    ledger = fed.ledgers[region]
    assert ledger is not None and ledger.wait(20) == 137
    fed.start_ledger(region)
    assert finished(fed, "k2").state == COMMITTED
    assert_books(fed, source, target, 750, 250)
    assert fed.clearing_sum() == 0


@pytest.mark.parametrize("region", ["330000", "110000"])
def test_ledgers_killed_with_the_gateway_mid_transfer_finish_it_after_restart(
    fed_of_processes: Federation, region: str
) -> None:
    fed = fed_of_processes
    source, target = funded(fed, 1_000)
    fed.start_gateway(crash_at="after_decision" if region == "110000" else "before_commit")
    transfer_dies_with_the_gateway(fed, "k5", source, target, 100)
    fed.kill_ledger(region)
    fed.start_gateway()
    fed.start_ledger(region)
    assert finished(fed, "k5").state == COMMITTED
    assert_books(fed, source, target, 900, 100)
    assert fed.clearing_sum() == 0


def test_a_destination_region_down_holds_until_it_returns(fed: Federation) -> None:
    source, target = funded(fed, 1_000)
    # The production call timeout, not the harness's short one: the transfer is HELD only once the source ledger has
    # answered the hold, and on a loaded machine that once took longer than the short timeout (the transfer was left
    # CREATED). The destination, being down, refuses at once whatever the timeout.
    fed.start_gateway(CARBON_GATEWAY_CALL_TIMEOUT_MS="5000")
    held = fed.ledger("330000")
    fed.kill_ledger("110000")
    transfer = fed.transfer("k3", source, target, 100)
    assert transfer.state == gw.CROSS_REGION_TRANSFER_STATE_HELD
    assert held.GetBalance(lpb.GetBalanceRequest(account=source), timeout=5).balance.held_points == 100
    fed.start_ledger("110000")
    assert finished(fed, "k3").state == COMMITTED
    assert_books(fed, source, target, 900, 100)


def hold_runs_out_after_the_credit(fed: Federation, source: str, target: str) -> None:
    fed.start_gateway(crash_at="after_credit", **SHORT_LIFE)
    transfer_dies_with_the_gateway(fed, "k4", source, target, 300)
    assert fed.balance("110000", target).total_points == 300

    def expired() -> bool:
        hold = fed.ledger("330000").GetHold(lpb.GetHoldRequest(hold_id="xrt:k4"), timeout=5).hold
        return hold.state == lpb.HOLD_STATE_EXPIRED

    wait_for(expired, timeout_s=10, what="the source hold to expire")


def test_an_expired_hold_after_the_credit_is_paid_by_a_late_debit(fed_of_processes: Federation) -> None:
    fed = fed_of_processes
    source, target = funded(fed, 1_000)
    hold_runs_out_after_the_credit(fed, source, target)
    fed.start_gateway(**SHORT_LIFE)
    transfer = finished(fed, "k4")
    assert (transfer.state, transfer.failure_reason) == (COMMITTED, "COMMITTED_BY_LATE_DEBIT")
    assert_books(fed, source, target, 700, 300)
    assert fed.clearing_sum() == 0


def test_when_the_late_debit_fails_the_credit_is_reversed(fed_of_processes: Federation) -> None:
    fed = fed_of_processes
    source, target = funded(fed, 1_000)
    hold_runs_out_after_the_credit(fed, source, target)
    fed.spend("330000", source, 800)
    fed.start_gateway(**SHORT_LIFE)
    transfer = finished(fed, "k4")
    assert (transfer.state, transfer.failure_reason) == (RELEASED, "HOLD_EXPIRED_CREDIT_REVERSED")
    assert_books(fed, source, target, 200, 0)
    assert fed.clearing_sum() == 0


def test_when_nothing_can_compensate_the_transfer_is_unknown(fed_of_processes: Federation) -> None:
    fed = fed_of_processes
    source, target = funded(fed, 1_000)
    hold_runs_out_after_the_credit(fed, source, target)
    fed.spend("330000", source, 800)
    fed.spend("110000", target, 250)
    fed.start_gateway(**SHORT_LIFE)
    transfer = finished(fed, "k4")
    assert transfer.state == UNKNOWN and transfer.failure_reason.startswith("REVERSAL_REFUSED")
    assert fed.conserved("330000") and fed.conserved("110000")
    assert "XRT_UNKNOWN" in (fed.root / "gateway.log").read_text()
