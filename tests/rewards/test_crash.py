"""A real `python -m rewards_svc` dies between hold and commit; after a restart the redemption is whole or absent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.rewards.v1 import rewards_service_pb2 as pb
from carbon.rewards.v1 import rewards_service_pb2_grpc as pb_grpc
from rewards_svc.server import CRASH_EXIT_CODE
from service_kit import identities
from service_kit.accounts import new_account_number
from service_kit.logs import ready_address
from tests.ports import free_port
from tests.rewards.conftest import Platform, StartPlatform
from tests.schema_templates import migrated_here
from tests.service_identities import TRUST

ROOT = Path(__file__).resolve().parents[2]


def start_rewards(
    platform: Platform, database_url: str, port: int, crash_at: str = "", **extra: str
) -> subprocess.Popen[bytes]:
    """A `python -m rewards_svc` of the platform's region over `database_url`; the fault suite uses it too."""
    migrated_here("rewards_svc", database_url)
    env = {
        **os.environ,
        "CARBON_PORT": str(port),
        "CARBON_DATABASE_URL": database_url,
        "CARBON_REGION": platform.region,
        "CARBON_LEDGER_ADDRESS": platform.ledger_address,
        "CARBON_RECOVERY_INTERVAL_S": "1",
        **TRUST.env(identities.regional(platform.region, "rewards")),
        **extra,
    }
    env.pop("CARBON_TEST_CRASH_AT", None)
    if crash_at:
        env["CARBON_TEST_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "rewards_svc"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def wait_ready(process: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
    """Waits for READY; the deadline guards against a hang (a loaded machine starts processes slowly)."""
    assert process.stdout is not None
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = process.stdout.readline()
        if ready_address(line.decode()):
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"rewards_svc did not start (exit {process.poll()})")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


@pytest.mark.parametrize("step", ["after_hold", "after_vouchers"])
def test_a_kill_between_hold_and_commit_leaves_voucher_and_points_gone_or_neither(
    start_platform: StartPlatform, tmp_path: Path, processes: list[subprocess.Popen[bytes]], step: str
) -> None:
    platform = start_platform("310000", serve_rewards=False)
    zhang = new_account_number("310000")
    platform.fund(zhang, 7200)
    database_url = f"sqlite:///{tmp_path / 'rewards.db'}"
    port = free_port()
    doomed = start_rewards(platform, database_url, port, crash_at=step)
    processes.append(doomed)
    wait_ready(doomed)
    with TRUST.allowed_channel(f"127.0.0.1:{port}", "310000") as channel:
        stub = pb_grpc.RewardsServiceStub(channel)
        request = pb.RedeemRequest(
            request_id="zhang-1", account_number=zhang, reward_id="shanghai-health-check", region_code="310000"
        )
        with pytest.raises(grpc.RpcError):
            stub.Redeem(request, timeout=10)
    assert doomed.wait(10) == CRASH_EXIT_CODE

    restarted = start_rewards(platform, database_url, port)
    processes.append(restarted)
    wait_ready(restarted)
    with TRUST.allowed_channel(f"127.0.0.1:{port}", "310000") as channel:
        stub = pb_grpc.RewardsServiceStub(channel)
        end = time.monotonic() + 15
        vouchers: list[pb.Voucher] = []
        while time.monotonic() < end:  # the recovery pass at start finishes it; poll, no fixed sleep
            vouchers = list(stub.ListVouchers(pb.ListVouchersRequest(account_number=zhang), timeout=5).vouchers)
            if vouchers:
                break
            time.sleep(0.05)
        points_gone = platform.available(zhang) == 0
        assert (len(vouchers) == 1 and points_gone) or (not vouchers and platform.available(zhang) == 7200)
        # The hold was placed, so recovery goes forward: a retry of the same request gets the completed redemption.
        settled = stub.Redeem(request, timeout=10).redemption
        assert settled.state == pb.REDEMPTION_STATE_COMPLETED and points_gone
        assert [v.code for v in settled.vouchers] == [v.code for v in vouchers]
