"""The example clients (examples/python, examples/node) run their journey against a real `carbon up`, as an integrator
would run them: as programs of their own, given only the gateway's address and the data folder `carbon up` wrote the
credentials into. Each exits non-zero at the first promise of the contract that does not hold."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_embedded_system import UP_DEADLINE_S, System

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JOURNEY_TIMEOUT_S = 300  # against a hang; a journey takes seconds


@pytest.fixture(scope="module")
def system(shared_embedded_system: System) -> System:
    """The worker's shared `carbon up` (tests/conftest.py): each journey draws request ids and a person of its own."""
    return shared_embedded_system


def gateway_address(system: System) -> str:
    return str(json.loads((system.data_dir / "registry.json").read_text())["gateway_address"])


def run_journey(command: list[str], cwd: Path) -> str:
    """Runs an example outside the repository with none of the platform's variables; returns its output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARBON_") and key != "PYTHONPATH"}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=JOURNEY_TIMEOUT_S, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "journey complete" in output, output
    return output


def unavailable(message: str) -> None:
    if os.environ.get("CARBON_REQUIRE_SERVICES") == "1":
        pytest.fail(f"CARBON_REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}")


@pytest.mark.timeout(3 * UP_DEADLINE_S)
def test_the_python_example_does_a_platforms_journey(system: System, tmp_path: Path) -> None:
    script = ROOT / "examples" / "python" / "journey.py"
    command = [sys.executable, str(script), "--gateway", gateway_address(system), "--data-dir", str(system.data_dir)]
    output = run_journey(command, tmp_path)
    assert "ok  stubs generated from protos/ only" in output
    assert "ok  unknown account: UNKNOWN_ACCOUNT" in output


@pytest.mark.timeout(3 * UP_DEADLINE_S)
def test_the_node_example_does_a_platforms_journey(system: System, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        unavailable("no `node` on PATH: the Node example client was not run")
    if not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        unavailable("no node_modules/@grpc/grpc-js (run `npm ci`): the Node example client was not run")
    script = ROOT / "examples" / "node" / "journey.mjs"
    command = [str(node), str(script), "--gateway", gateway_address(system), "--data-dir", str(system.data_dir)]
    output = run_journey(command, tmp_path)
    assert "ok  moved 400 points across regions (CROSS_REGION_TRANSFER_STATE_COMMITTED)" in output
    assert "ok  unknown account: UNKNOWN_ACCOUNT" in output
