"""`carbon up` starts a process that died on its own again (as Kubernetes restarts a crashed container), and the
rest of the system keeps serving meanwhile: one region, its ledger killed with kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import embedded_trust, identities
from service_kit.channels import open_channel
from service_kit.embedded import RESTART_FIRST_S, RESTART_MAX_S, Child, restart_delay
from service_kit.topology import Registry
from tests.ports import UPWARDS, free_base_port

pytestmark = pytest.mark.e2e

# Deadlines against a hang, not measurements (a loaded machine starts processes slowly).
UP_DEADLINE_S = 180
BACK_DEADLINE_S = 90
ACCOUNT = "system:issuance"  # read as an operator: any balance will do


def _child_pid_with_port(parent: int, port: int) -> int:
    """The pid of `carbon up`'s child listening on `port` (its CARBON_PORT)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in children:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"CARBON_PORT={port}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no child of {parent} listens on {port}")


@pytest.fixture
def one_region(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str], Path]]:
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "service_kit.cli", "up", "--data-dir", str(data_dir), "--regions", "330000"]
    process = subprocess.Popen(
        [*command, "--base-port", str(free_base_port(UPWARDS))],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("CARBON_")},
    )
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "SERVING in" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(UP_DEADLINE_S), "carbon up did not get ready:\n" + "".join(output)
        yield process, output, data_dir
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(UP_DEADLINE_S + 2 * BACK_DEADLINE_S)
def test_a_killed_process_is_started_again_and_serves(
    one_region: tuple[subprocess.Popen[str], list[str], Path],
) -> None:
    process, output, data_dir = one_region
    registry = Registry.load(data_dir / "registry.json")
    ledger = next(spec for spec in registry.processes() if spec.service == "ledger_svc")
    trust = embedded_trust.load(data_dir)
    assert trust is not None

    def balance() -> int:
        with open_channel(ledger.address, trust.settings(identities.OPS_API)) as channel:
            stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            answer = stub.GetBalance(ledger_service_pb2.GetBalanceRequest(account=ACCOUNT), timeout=5)
            return int(answer.balance.total_points)

    before = balance()
    killed = _child_pid_with_port(process.pid, ledger.port)
    os.kill(killed, signal.SIGKILL)

    deadline = time.monotonic() + BACK_DEADLINE_S
    while True:
        try:
            assert balance() == before
            break
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert time.monotonic() < deadline, "the ledger was not started again:\n" + "".join(output)
            time.sleep(0.5)

    assert process.poll() is None, "carbon up stopped the system:\n" + "".join(output)
    assert _child_pid_with_port(process.pid, ledger.port) != killed
    told = "".join(output)
    assert f"{ledger.label} exited with code -9; starting it again" in told and f"{ledger.label} started again" in told


def test_restarts_back_off_while_a_process_keeps_dying_and_start_over_once_it_stayed_up() -> None:
    child = Child(spec=None, process=None, log_path=Path("x"), env={}, started_at=100.0)  # type: ignore[arg-type]
    assert restart_delay(child, 0.0, now=100.5) == RESTART_FIRST_S
    assert restart_delay(child, 1.0, now=100.5) == 2.0
    assert restart_delay(child, 16.0, now=101.0) == RESTART_MAX_S
    assert restart_delay(child, RESTART_MAX_S, now=101.0) == RESTART_MAX_S
    assert restart_delay(child, RESTART_MAX_S, now=161.0) == RESTART_FIRST_S
