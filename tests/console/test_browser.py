"""The console's scenarios in Chromium (tests/console/browser/*.mjs, playwright-core) against `carbon up`, each a
node process given the console's address and the staff tokens; a failed assertion there fails the test here with
the browser's message. The scenarios run in order in one test: later ones use what the counter journey made."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from identity_svc.domain.real_name import id_check_char
from tests.console.conftest import ROOT, SCREENSHOTS, Console

pytestmark = pytest.mark.e2e
BROWSER = Path(__file__).resolve().parent / "browser"
# A deadline against a hang: a scenario drives a dozen pages in a browser on a machine whose cores tests share.
SCENARIO_DEADLINE_S = 120


def run_scenario(name: str, console: Console, chromium: Path, data: dict[str, Any] | None = None) -> str:
    env = {
        **os.environ,
        "CONSOLE_URL": console.url,
        "CONSOLE_TOKENS": json.dumps(console.tokens),
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


def id_number(first17: str) -> str:
    return first17 + id_check_char(first17)


def beijing_account(console: Console) -> str:
    """A resident of another region than the community staff's, opened by the admin through the API."""
    body = {"region_code": "110000", "name": "赵淑珍", "id_number": id_number("11010519500101123"),
            "phone_number": "13700000002", "centre_id": "bj-dongcheng-2"}  # fmt: skip
    with console.api("admin") as admin:
        opened = admin.post("/v1/accounts", json=body)
    assert opened.status_code == 201, opened.text
    return str(opened.json()["account"]["account_number"])


@pytest.mark.timeout(900)
def test_counter_journey_dashboard_roles_four_eyes_and_every_page(browser_ready: Path, console: Console) -> None:
    resident = {"name": "李桂兰", "id_number": id_number("33010619520304152"), "phone": "13800000001"}
    journey = json.loads(run_scenario("counter_journey", console, browser_ready, resident))
    with console.api("admin") as admin:
        balance = admin.get(f"/v1/accounts/{journey['account']}/balance").json()["balance"]
        vouchers = admin.get(f"/v1/accounts/{journey['account']}/vouchers").json()["vouchers"]
    assert balance["available_points"] == journey["balance"] - vouchers[0]["price_points"]
    assert (vouchers[0]["code"], vouchers[0]["state"]) == (journey["voucher"], "VOUCHER_STATE_USED")

    run_scenario("dashboard", console, browser_ready)
    run_scenario("roles", console, browser_ready, {"other_region_account": beijing_account(console)})
    run_scenario("adjustments", console, browser_ready, journey)
    with console.api("admin") as admin:
        after = admin.get(f"/v1/accounts/{journey['account']}/balance").json()["balance"]
    assert after["available_points"] == balance["available_points"] + 50
    run_scenario("pages", console, browser_ready, journey)
    run_scenario("docs", console, browser_ready)

    shots = {path.stem for path in SCREENSHOTS.glob("*.png")}
    assert {
        "counter-redeemed",
        "dashboard-zh",
        "dashboard-en",
        "national-en",
        "ops-audit",
        "ops-staff",
        "docs-redoc",
    } <= shots
