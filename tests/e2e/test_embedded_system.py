"""`carbon up` on a real machine: 13 processes, health, reflection, a second start refused, clean stop, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import embedded_trust, identities
from service_kit.channels import open_channel
from service_kit.status import error_details
from service_kit.topology import ProcessSpec, Registry
from tests.ports import UPWARDS, free_base_port, port_is_free

pytestmark = pytest.mark.e2e

# A deadline against a hang, not a measurement: 14 processes start on a machine whose cores other tests share
# (how fast they start is bench/'s business).
UP_DEADLINE_S = 180

# Valid resident ID numbers (GB 11643 check digit): one registered in Hangzhou (the counter's resident), one in
# Beijing (the person opening in every region). On the shared system other tests open persons too (the outsider's
# is 11010519491231002X), so these are this test's own.
ZHEJIANG_ID = "330106199003071236"
EVERY_REGION_ID = "110105197208150038"

SERVICE_OF = {
    "gateway": "carbon.gateway.v1.GatewayService",
    "identity_svc": "carbon.identity.v1.IdentityService",
    "ingest_svc": "carbon.ingest.v1.IngestService",
    "ledger_svc": "carbon.ledger.v1.LedgerService",
    "rewards_svc": "carbon.rewards.v1.RewardsService",
    "incentives_svc": "carbon.incentives.v1.IncentivesService",
}


class System:
    def __init__(self, data_dir: Path, base_port: int, mtls: bool = False) -> None:
        self.data_dir = data_dir
        self.base_port = base_port
        self.mtls = mtls
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "service_kit.cli", *args, "--data-dir", str(self.data_dir)]

    def up(self, *options: str, timeout_s: float = UP_DEADLINE_S) -> None:
        started = time.monotonic()
        self.process = subprocess.Popen(
            [*self.command("up"), "--base-port", str(self.base_port), *(["--mtls"] if self.mtls else []), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={key: value for key, value in os.environ.items() if not key.startswith("CARBON_")},
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "SERVING in" in line:
                return
            if time.monotonic() - started > timeout_s:
                break
        self.process.kill()
        raise AssertionError("carbon up did not get ready:\n" + "".join(self.output))

    def channel(self, address: str, spiffe_id: str = identities.OPS_API) -> grpc.Channel:
        """A channel presenting one of the system's identities (by default the ops API's, as an operator's tools),
        with the TLS material of this run."""
        trust = embedded_trust.load(self.data_dir)
        assert trust is not None and trust.mtls == self.mtls
        return open_channel(address, trust.settings(spiffe_id))

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.output.extend(self.process.stdout.readlines())
        return code


def _one_person_opens_an_account_in_every_region(system: System, registry: Registry) -> dict[str, str]:
    """The account numbers by region; one person has one national key in every region."""
    person_keys = set()
    accounts: dict[str, str] = {}
    for region in registry.regions:
        with system.channel(region.identity_address) as channel:
            opened = identity_service_pb2_grpc.IdentityServiceStub(channel).OpenAccount(
                identity_service_pb2.OpenAccountRequest(
                    request_id=f"e2e-{region.region_code}",
                    channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                    name="张三",
                    id_number=EVERY_REGION_ID,
                    phone_number="13812345678",
                    binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="2088-e2e"),
                ),
                timeout=10,
            )
            # Redeem anywhere shares this person's data between regions only with their consent (ADR 0610).
            identity_service_pb2_grpc.IdentityServiceStub(channel).GrantConsent(
                identity_service_pb2.GrantConsentRequest(
                    request_id=f"e2e-sharing-{region.region_code}",
                    account_number=opened.account.account_number,
                    category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING,
                    channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                    recorded_by="alipay",
                ),
                timeout=10,
            )
        assert opened.account.account_number.startswith(region.region_code)
        person_keys.add(opened.account.person_key)
        accounts[region.region_code] = opened.account.account_number
    assert len(person_keys) == 1, "one person must have one national key in every region"
    return accounts


def _points_earned_in_zhejiang_buy_the_beijing_bus_pass(
    system: System, registry: Registry, accounts: dict[str, str], key: str
) -> None:
    """Earn in 330000, then the resident's platform (`key`) has the resident authorize the redemption and one gateway
    call moves the points to 110000 and redeems the Beijing-only bus pass."""
    zhejiang = next(region for region in registry.regions if region.region_code == "330000")
    with system.channel(zhejiang.ledger_address, identities.OPS_API) as channel:
        earned = ledger_service_pb2_grpc.LedgerServiceStub(channel).PostTransfers(
            ledger_service_pb2.PostTransfersRequest(
                transfers=[
                    ledger_service_pb2.Transfer(
                        transfer_id="e2e-earn",
                        debit_account="system:issuance",
                        credit_account=accounts["330000"],
                        amount_points=12_500,
                        code=ledger_service_pb2.TRANSFER_CODE_EARN,
                    )
                ]
            ),
            timeout=10,
        )
    assert earned.results[0].status == ledger_service_pb2.TRANSFER_STATUS_POSTED
    platform = (("authorization", f"Bearer {key}"),)
    with system.channel(registry.gateway_address) as channel:
        authorization = (
            identity_service_pb2_grpc.IdentityServiceStub(channel)
            .IssueResidentAuthorization(
                identity_service_pb2.IssueResidentAuthorizationRequest(
                    request_id="e2e-bus-pass",
                    account_number=accounts["330000"],
                    operation=identity_service_pb2.RESIDENT_OPERATION_REDEEM_ANYWHERE,
                    amount_points=12_000,
                    to_account=accounts["110000"],
                    reward_id="beijing-bus-pass",
                    quantity=1,
                ),
                metadata=platform,
                timeout=30,
            )
            .authorization
        )
        redeemed = gateway_service_pb2_grpc.GatewayServiceStub(channel).RedeemAnywhere(
            gateway_service_pb2.RedeemAnywhereRequest(
                request_id="e2e-bus-pass",
                source_account=accounts["330000"],
                target_account=accounts["110000"],
                reward_id="beijing-bus-pass",
                quantity=1,
                resident_authorization=authorization,
            ),
            metadata=platform,
            timeout=30,
        )
    assert redeemed.redemption_id and len(redeemed.voucher_codes) == 1
    balances = {}
    for region in registry.regions:
        with system.channel(region.ledger_address) as channel:
            stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            if region.region_code in ("330000", "110000"):
                balance = stub.GetBalance(
                    ledger_service_pb2.GetBalanceRequest(account=accounts[region.region_code]), timeout=10
                )
                balances[region.region_code] = balance.balance.total_points
            assert stub.CheckConservation(ledger_service_pb2.CheckConservationRequest(), timeout=30).balanced
    assert balances == {"330000": 500, "110000": 0}


def _a_resident_earns_at_the_community_counter(registry: Registry, data_dir: Path) -> None:
    """Ops HTTP API -> identity, ingest (signed as the community-centre partner) and ledger, all real processes."""
    token = (data_dir / "ops-admin-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://{registry.ops_api_address}", headers=headers, timeout=30) as ops:
        opened = ops.post(
            "/v1/accounts",
            json={
                "region_code": "330000",
                "name": "王芳",
                "id_number": ZHEJIANG_ID,
                "phone_number": "13912345678",
                "centre_id": "hz-xihu-01",
            },
            headers={"X-Request-Id": "e2e-open"},
        )
        assert opened.status_code == 201, opened.text
        number = opened.json()["account"]["account_number"]
        consent = ops.post(
            f"/v1/accounts/{number}/consents",
            json={"category": "COMMUNITY_ACTIVITY", "grant": True},
            headers={"X-Request-Id": "e2e-consent"},
        )
        assert consent.status_code == 200, consent.text
        planted = ops.post(
            f"/v1/accounts/{number}/community-events",
            json={"behaviour": "tree_planting"},
            headers={"X-Request-Id": "e2e-tree"},
        )
        assert planted.status_code == 200, planted.text
        balance = ops.get(f"/v1/accounts/{number}/balance")
        assert balance.status_code == 200, balance.text
        assert int(balance.json()["balance"]["available_points"]) == 200
        unauthenticated = httpx.get(f"http://{registry.ops_api_address}/v1/accounts/{number}/balance", timeout=30)
        assert unauthenticated.status_code == 401


def _a_process_with_the_wrong_identity_is_refused_and_the_books_stay(
    system: System, registry: Registry, accounts: dict[str, str]
) -> None:
    """Another region's ingest, and this region's rewards, cannot mint; rewards cannot carry lots in; without any
    identity (plaintext only: under mTLS there is no connection without a certificate) nothing is answered."""
    zhejiang = next(region for region in registry.regions if region.region_code == "330000")
    mint = ledger_service_pb2.PostTransfersRequest(
        transfers=[
            ledger_service_pb2.Transfer(
                transfer_id="e2e-forged-earn",
                debit_account="system:issuance",
                credit_account=accounts["330000"],
                amount_points=1_000_000,
                code=ledger_service_pb2.TRANSFER_CODE_EARN,
            )
        ]
    )
    carry = ledger_service_pb2.PostTransfersRequest()
    carry.CopyFrom(mint)
    carry.transfers[0].transfer_id = "e2e-forged-carry"
    carry.transfers[0].debit_account = "system:clearing"
    carry.transfers[0].carried_lots.add(amount_points=1_000_000, earned_on=common_pb2.Date(year=2026, month=1, day=2))
    attempts = [
        (identities.regional("110000", "ingest"), mint, "PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),
        (identities.regional("330000", "rewards"), mint, "PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),
        (identities.regional("330000", "rewards"), carry, "PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),
    ]
    with system.channel(zhejiang.ledger_address) as channel:
        before = _balance(channel, accounts["330000"])
    for spiffe_id, request, code, reason in attempts:
        with system.channel(zhejiang.ledger_address, spiffe_id) as channel, pytest.raises(grpc.RpcError) as refused:
            ledger_service_pb2_grpc.LedgerServiceStub(channel).PostTransfers(request, timeout=10)
        details = error_details(refused.value)
        assert (details.code.name, details.reason) == (code, reason), spiffe_id
    if not system.mtls:
        with grpc.insecure_channel(zhejiang.ledger_address) as channel, pytest.raises(grpc.RpcError) as refused:
            ledger_service_pb2_grpc.LedgerServiceStub(channel).PostTransfers(mint, timeout=10)
        assert error_details(refused.value).reason == "SERVICE_IDENTITY_MISSING"
    with system.channel(zhejiang.ledger_address) as channel:
        assert _balance(channel, accounts["330000"]) == before


def _balance(channel: grpc.Channel, account: str) -> int:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    return int(stub.GetBalance(ledger_service_pb2.GetBalanceRequest(account=account), timeout=10).balance.total_points)


def _every_process_serves_and_the_journeys_work(system: System) -> list[ProcessSpec]:
    """Health, reflection and the front door of all 17 processes, then the journeys across them; the processes."""
    registry = Registry.load(system.data_dir / "registry.json")
    processes = registry.processes()
    assert len(processes) == 17  # the gateway, 3 regions x 5 services, the ops HTTP API

    # Seventeen probes (mTLS handshakes among them) on a loaded machine: a generous per-process timeout.
    status = subprocess.run(system.command("status", "--timeout", "10"), capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "17/17 SERVING" in status.stdout

    for spec in processes:
        if spec.service == "ops_api":
            continue
        with system.channel(spec.address) as channel:
            assert SERVICE_OF[spec.service] in ProtoReflectionDescriptorDatabase(channel).get_services()

    platform_key = (system.data_dir / "gateway-platform-key").read_text().strip()
    assert "gateway-platform-key" in "".join(system.output)  # the start-up table says where the key is
    with system.channel(registry.gateway_address) as channel:
        regions = gateway_service_pb2_grpc.GatewayServiceStub(channel).ListRegions(
            gateway_service_pb2.ListRegionsRequest(),
            metadata=(("authorization", f"Bearer {platform_key}"),),
            timeout=10,
        )
    assert {(region.region_code, region.health) for region in regions.regions} == {
        ("110000", "SERVING"),
        ("310000", "SERVING"),
        ("330000", "SERVING"),
    }

    accounts = _one_person_opens_an_account_in_every_region(system, registry)

    _points_earned_in_zhejiang_buy_the_beijing_bus_pass(system, registry, accounts, platform_key)

    _a_process_with_the_wrong_identity_is_refused_and_the_books_stay(system, registry, accounts)

    _a_resident_earns_at_the_community_counter(registry, system.data_dir)

    # The operator's view of the ledgers' schedulers, called with the identity carbon up prepared.
    jobs = subprocess.run(system.command("jobs"), capture_output=True, text=True, timeout=60)
    assert jobs.returncode == 0, jobs.stdout + jobs.stderr
    assert all(f"{region.region_code} " in jobs.stdout for region in registry.regions) and "leader" in jobs.stdout
    return processes


@pytest.mark.timeout(2 * UP_DEADLINE_S)
def test_carbon_up_on_plaintext_serves_every_process_and_the_journeys(shared_embedded_system: System) -> None:
    """Plaintext (service tokens) on the session's shared system: nothing here stops or restarts it, and the
    persons and request ids are this test's own (docs/adr/0025). Stopping and starting again is the same code under
    either transport, so the mTLS test below does it for both."""
    assert not shared_embedded_system.mtls
    _every_process_serves_and_the_journeys_work(shared_embedded_system)


@pytest.fixture
def mtls_system(tmp_path: Path) -> Iterator[System]:
    """The whole system as `carbon up --mtls` runs it, its own: the test stops and restarts it."""
    running = System(tmp_path / "data", free_base_port(UPWARDS), mtls=True)
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.kill()
        running.process.wait()


@pytest.mark.timeout(3 * UP_DEADLINE_S)
def test_carbon_up_under_mtls_serves_every_process_then_stops_cleanly_and_starts_again(mtls_system: System) -> None:
    system = mtls_system
    system.up()
    processes = _every_process_serves_and_the_journeys_work(system)

    second = subprocess.run(
        [*system.command("up"), "--base-port", str(system.base_port)], capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 1
    assert "port in use" in second.stderr and "carbon status" in second.stderr

    assert system.stop() == 0
    assert all(port_is_free(spec.port) for spec in processes), "a process outlived carbon up"
    down = subprocess.run(system.command("status"), capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "UNREACHABLE" in down.stdout

    # The same data folder again: migrations are idempotent. One region's processes are every kind of service (each
    # migrates its existing database on start) at 7 processes' cost instead of 17.
    system.up("--regions", "330000")
    status = subprocess.run(system.command("status", "--timeout", "10"), capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "7/7 SERVING" in status.stdout, status.stdout + status.stderr
    assert system.stop() == 0


def test_status_without_a_system_says_how_to_start_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service_kit.cli", "status", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "carbon up" in result.stdout
