"""The console's scenarios in Chromium (tests/console/browser/*.mjs, playwright-core), each a node process given the
console's address and the staff tokens; a failed assertion there fails the test here with the browser's message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from identity_svc.domain.real_name import id_check_char
from tests.console.conftest import ROOT, SCREENSHOTS
from tests.ops_api.ops_support import Ops, RunningApi

BROWSER = Path(__file__).resolve().parent / "browser"
# A deadline against a hang: a scenario drives a dozen pages in a browser on a machine whose cores tests share.
SCENARIO_DEADLINE_S = 100


def run_scenario(name: str, api: RunningApi, ops: Ops, chromium: Path, data: dict[str, Any] | None = None) -> str:
    env = {
        **os.environ,
        "CONSOLE_URL": api.base_url,
        "CONSOLE_TOKENS": json.dumps(ops.tokens),
        "CONSOLE_SCREENSHOTS": str(SCREENSHOTS),
        "CONSOLE_DATA": json.dumps(data or {}),
        "CHROMIUM": str(chromium),
    }
    done = subprocess.run(
        ["node", str(BROWSER / f"{name}.mjs")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCENARIO_DEADLINE_S,
    )
    assert done.returncode == 0, f"{name} failed in the browser:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def resident(ops: Ops) -> dict[str, str]:
    """A new resident (valid ID number check digit, unused phone number) for the counter to open an account for."""
    person = next(ops.people)
    first17 = f"33010619{70 + person % 30}0{person % 9 + 1}1{person % 9 + 1}{person % 1000:03d}"
    return {"name": "李桂兰", "id_number": first17 + id_check_char(first17), "phone": f"138{person:08d}"}


def test_counter_journey_then_dashboard(browser_ready: Path, console: RunningApi, console_ops: Ops) -> None:
    journey = json.loads(run_scenario("counter_journey", console, console_ops, browser_ready, resident(console_ops)))
    balance = console_ops.get("admin", f"/v1/accounts/{journey['account']}/balance").json()["balance"]
    assert balance["available_points"] > 0
    voucher = console_ops.get("admin", f"/v1/accounts/{journey['account']}/vouchers").json()["vouchers"][0]
    assert (voucher["code"], voucher["state"]) == (journey["voucher"], "VOUCHER_STATE_USED")
    run_scenario("dashboard", console, console_ops, browser_ready)
    for page in ("counter-start", "counter-opened", "counter-redeemed", "dashboard-zh", "dashboard-en"):
        assert (SCREENSHOTS / f"{page}.png").stat().st_size > 0
