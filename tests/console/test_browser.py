"""The console's scenarios in Chromium (tests/console/browser/*.mjs, playwright-core) against `carbon up`, run by one
node process and one Chromium for the module, each scenario in browser contexts of its own; a failed assertion there
fails the test here with the browser's message. The scenarios run in order in one test: later ones use what the
counter journey made."""

from __future__ import annotations

import json
from datetime import date

import pytest

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from identity_svc.domain.real_name import id_check_char
from service_kit.channels import open_channel
from service_kit.clock import china_day, system_clock
from service_kit.embedded_front_door import DEMO_PARTNER_SECRETS_FILE, PARTNER, key_file
from service_kit.partner_signing import sign_request
from service_kit.topology import REGISTRY_FILE, Registry
from tests.console.conftest import SCREENSHOTS, Console, Scenarios

pytestmark = pytest.mark.e2e


def id_number(first17: str) -> str:
    return first17 + id_check_char(first17)


def guangzhou_account(console: Console) -> str:
    """A resident of another region than the community staff's, opened by the admin through the API."""
    body = {"region_code": "440100", "name": "赵淑珍", "id_number": id_number("44010619500101123"),
            "phone_number": "13700000002", "centre_id": "gz-tianhe-2"}  # fmt: skip
    with console.api("admin") as admin:
        opened = admin.post("/v1/accounts", json=body)
    assert opened.status_code == 201, opened.text
    return str(opened.json()["account"]["account_number"])


def zhejiang_adult(console: Console, first17: str, phone: str) -> str:
    """An adult of Zhejiang opened by the admin through the API, consenting to community activities."""
    body = {"region_code": "330000", "name": "王建国", "id_number": id_number(first17), "phone_number": phone,
            "centre_id": "zj-gongshu-1"}  # fmt: skip
    with console.api("admin") as admin:
        opened = admin.post("/v1/accounts", json=body)
        assert opened.status_code == 201, opened.text
        number = str(opened.json()["account"]["account_number"])
        consent = {"category": "COMMUNITY_ACTIVITY", "grant": True}
        granted = admin.post(f"/v1/accounts/{number}/consents", json=consent)
        assert granted.status_code == 200, granted.text
    return number


def child_id_number(years: int) -> str:
    """The ID number of a Zhejiang child who turns `years` old today (China time): under 14 for years < 14."""
    today = china_day(system_clock())
    born = (
        today.replace(year=today.year - years)
        if (today.month, today.day) != (2, 29)
        else date(today.year - years, 3, 1)
    )
    return id_number(f"330106{born:%Y%m%d}217")


def demo_partner_reports_tree_planting(console: Console, account: str, evidence: str) -> inpb.EventResult:
    """The demo data partner (carbon up's, through the gateway with its key, signed with its secret) reports a tree
    planting of the resident by a sign-in sheet id."""
    secret = json.loads((console.data_dir / DEMO_PARTNER_SECRETS_FILE).read_text())["330000"]
    key = key_file(console.data_dir, PARTNER).read_text().strip()
    event = inpb.Event(
        event_id=f"planting-{evidence}",
        account=common_pb2.AccountRef(account_number=account),
        behaviour="tree_planting",
        quantity_milli=1000,
        region_code="330000",
        evidence_ref=evidence,
    )
    event.occurred_at.GetCurrentTime()
    request = inpb.SubmitEventsRequest(partner_id=PARTNER[0], batch_id=f"batch-{evidence}", events=[event])
    sign_request(request, secret["key_id"], secret["secret"])
    gateway = Registry.load(console.data_dir / REGISTRY_FILE).gateway_address
    metadata = (("authorization", f"Bearer {key}"), ("x-carbon-region", "330000"))
    with open_channel(gateway) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        return stub.SubmitEvents(request, metadata=metadata, timeout=30).results[0]


@pytest.mark.timeout(900)
def test_counter_journey_dashboard_roles_four_eyes_and_every_page(scenarios: Scenarios, console: Console) -> None:
    resident = {"name": "李桂兰", "id_number": id_number("33010619520304152"), "phone": "13800000001"}
    journey = scenarios.run("counter_journey", resident)
    with console.api("admin") as admin:
        balance = admin.get(f"/v1/accounts/{journey['account']}/balance").json()["balance"]
        vouchers = admin.get(f"/v1/accounts/{journey['account']}/vouchers").json()["vouchers"]
    assert balance["available_points"] == journey["balance"] - vouchers[0]["price_points"]
    assert (vouchers[0]["code"], vouchers[0]["state"]) == (journey["voucher"], "VOUCHER_STATE_USED")

    scenarios.run("dashboard")
    scenarios.run("roles", {"other_region_account": guangzhou_account(console)})
    scenarios.run("adjustments", journey)
    with console.api("admin") as admin:
        after = admin.get(f"/v1/accounts/{journey['account']}/balance").json()["balance"]
    assert after["available_points"] == balance["available_points"] + 50
    scenarios.run("pages", journey)
    scenarios.run("docs")

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


@pytest.mark.timeout(900)
def test_guardian_campaign_spend_claim_conflicts_and_recycling_at_the_console(
    scenarios: Scenarios, console: Console
) -> None:
    guardian = zhejiang_adult(console, "33010619600505123", "13800000011")
    child = {"name": "李小明", "id_number": child_id_number(13), "phone": "13800000012", "guardian": guardian,
             "adult_id_number": child_id_number(14)}  # fmt: skip
    opened = scenarios.run("guardian", child)
    with console.api("admin") as admin:
        account = admin.get(f"/v1/accounts/{opened['account']}").json()["account"]
    assert (account["minor"], account["guardian_account_number"]) == (True, guardian)

    resident = zhejiang_adult(console, "33010619700606123", "13800000013")
    made = scenarios.run("campaigns", {"name": "植树奖励", "account": resident})
    with console.api("viewer") as viewer:
        listed = viewer.get("/v1/regions/330000/campaigns").json()["campaigns"]
    campaign = next(c for c in listed if c["campaign_id"] == made["campaign_id"])
    assert (campaign["paid_points"], campaign["bonuses_paid"], campaign["budget_points"]) == (50, 1, 1000)

    scenarios.run("partner_change")
    # A resident with no planting today yet (tree planting's daily cap is 2): the counter's report of the same
    # sign-in sheet is refused as the activity the demo partner already reported, not by the cap.
    planter = zhejiang_adult(console, "33010619750808123", "13800000014")
    evidence = "zj-signin-2026-001"
    first = demo_partner_reports_tree_planting(console, planter, evidence)
    assert (first.outcome, first.points > 0) == (inpb.EVENT_OUTCOME_ACCEPTED, True), first
    scenarios.run("conflicts", {"account": planter, "evidence": evidence})

    recycler = {"name": "陈志强", "id_number": id_number("44010619650707123"), "phone": "13900000021"}
    recycled = scenarios.run("recycling", recycler)
    # 25 kg brought, Guangzhou's daily cap of 20 kg at 30 points a kg (ingest_svc/domain/catalog.yaml).
    assert recycled["points"] == 20 * 30
    with console.api("admin") as admin:
        balance = admin.get(f"/v1/accounts/{recycled['account']}/balance").json()["balance"]
    assert balance["available_points"] == recycled["points"]
