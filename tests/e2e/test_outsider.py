"""A new integrator's day, against `carbon up`, knowing only the gateway's address, the keys `carbon up` handed out and
the protos: a platform opens accounts and records consent, a data partner submits a signed batch, the platform redeems,
uses and cancels vouchers, donates and moves points across regions with the resident's authorization. Then what an
outsider without the right credentials tries is refused with a reason and the books do not change.

Only the stubs generated from protos/ (gen/) are imported, no service package: the batch signature is computed from
docs/contract/signing.md, as a partner in any language would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2 as idpb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from carbon.rewards.v1 import rewards_service_pb2_grpc
from tests.e2e.test_embedded_system import UP_DEADLINE_S, System

pytestmark = pytest.mark.e2e

ZJ, BJ = "330000", "110000"
ID_NUMBER = "11010519491231002X"  # valid check digit (GB 11643); the person opens in two regions


def sign(request: inpb.SubmitEventsRequest, secret: str) -> str:
    """docs/contract/signing.md: HMAC-SHA256 over the canonical bytes of (partner_id, batch_id, events)."""

    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack(">I", len(raw)) + raw

    out = bytearray(b"carbon.ingest.v1/batch\n" + text(request.partner_id) + text(request.batch_id))
    out += struct.pack(">I", len(request.events))
    for event in request.events:
        out += text(event.event_id)
        kind = event.account.WhichOneof("ref") if event.HasField("account") else None
        if kind == "account_number":
            out += b"\x01" + text(event.account.account_number)
        elif kind == "binding":
            out += b"\x02" + text(event.account.binding.platform) + text(event.account.binding.platform_user_id)
        elif kind == "phone_number":
            out += b"\x03" + text(event.account.phone_number)
        else:
            out += b"\x00"
        out += text(event.behaviour) + struct.pack(">q", event.quantity_milli)
        out += struct.pack(">qI", event.occurred_at.seconds, event.occurred_at.nanos)
        out += text(event.region_code) + text(event.evidence_ref) + text(event.tier)
    return hmac.new(secret.encode(), bytes(out), hashlib.sha256).hexdigest()


class Outsider:
    """Someone holding the gateway's address and one key."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self.key = key
        self.identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
        self.ingest = ingest_service_pb2_grpc.IngestServiceStub(channel)
        self.ledger = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        self.rewards = rewards_service_pb2_grpc.RewardsServiceStub(channel)
        self.gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)

    def md(self, region: str = "") -> tuple[tuple[str, str], ...]:
        auth = (("authorization", f"Bearer {self.key}"),) if self.key else ()
        return (*auth, ("x-carbon-region", region)) if region else auth


@pytest.fixture(scope="module")
def system(shared_embedded_system: System) -> System:
    """The worker's shared `carbon up` (tests/conftest.py): this module's request ids and person are its own."""
    return shared_embedded_system


@pytest.fixture(scope="module")
def channel(system: System) -> Iterator[grpc.Channel]:
    address = json.loads((system.data_dir / "registry.json").read_text())["gateway_address"]
    with grpc.insecure_channel(address) as opened:
        yield opened


def key(system: System, name: str) -> str:
    return (system.data_dir / name).read_text().strip()


def open_account(platform: Outsider, region: str) -> idpb.Account:
    request = idpb.OpenAccountRequest(
        request_id=f"outsider-open-{region}",
        channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
        name="张三",
        id_number=ID_NUMBER,
        phone_number="13812345678",
        binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="2088-outsider"),
    )
    return platform.identity.OpenAccount(request, metadata=platform.md(region), timeout=30).account


def grant(platform: Outsider, account: str, category: common_pb2.DataCategory.ValueType) -> None:
    request = idpb.GrantConsentRequest(
        request_id=f"outsider-consent-{account}-{category}", account_number=account, category=category,
        channel=common_pb2.CHANNEL_INTERNET_PLATFORM, recorded_by="alipay",
    )  # fmt: skip
    platform.identity.GrantConsent(request, metadata=platform.md(), timeout=30)


def submit_a_day(partner: Outsider, data_dir: Path, region: str, opened: idpb.Account) -> inpb.SubmitEventsResponse:
    """A charge from ten minutes before the account was opened (no consent can take effect before the opening, so it
    must not score), then a day's worth of what the demo partner reports, each behaviour to its daily cap, all after
    the opening: 100 kWh of charging (500 points), ten trips (100) and 30 km by bike (90)."""
    secret = json.loads((data_dir / "demo-partner-secrets.json").read_text())[region]
    batch = inpb.SubmitEventsRequest(partner_id="demo-partner", batch_id=f"outsider-{region}", key_id=secret["key_id"])
    before_opening = opened.opened_at.ToDatetime(tzinfo=UTC) - timedelta(minutes=10)
    now = datetime.now(UTC)
    day = [("before-opening", "ev_charging_kwh", 100_000, before_opening), ("charge", "ev_charging_kwh", 100_000, now)]
    day += [(f"trip-{n}", "transit_trip", 1_000, now) for n in range(10)] + [("ride", "bike_km", 30_000, now)]
    for name, behaviour, quantity_milli, at in day:
        # Each event names its real-world activity (a charger session, a card tap, a ride): trips in the same minute
        # without one would be taken for one trip reported twice (DUPLICATE_ACTIVITY, docs/adr/0412).
        event = batch.events.add(
            event_id=f"{region}-{name}",
            behaviour=behaviour,
            quantity_milli=quantity_milli,
            region_code=region,
            evidence_ref=f"demo:{opened.account_number}:{name}",
        )
        event.account.account_number = opened.account_number
        event.occurred_at.FromDatetime(at)
    batch.signature = sign(batch, secret["secret"])
    return partner.ingest.SubmitEvents(batch, metadata=partner.md(region), timeout=60)


def redeem_topup(platform: Outsider, account: str, request_id: str) -> str:
    request = rpb.RedeemRequest(request_id=request_id, account_number=account, reward_id="transit-topup", quantity=1)
    redemption = platform.rewards.Redeem(request, metadata=platform.md(), timeout=30).redemption
    return str(redemption.vouchers[0].code)


def balance(platform: Outsider, account: str) -> Any:
    return platform.ledger.GetBalance(lpb.GetBalanceRequest(account=account), metadata=platform.md(), timeout=30)


@pytest.mark.timeout(3 * UP_DEADLINE_S)
def test_an_outsider_does_everything_through_the_gateway_alone(system: System, channel: grpc.Channel) -> None:
    platform = Outsider(channel, key(system, "gateway-platform-key"))
    partner = Outsider(channel, key(system, "gateway-partner-key"))
    opened = {region: open_account(platform, region) for region in (ZJ, BJ)}
    zj, bj = opened[ZJ].account_number, opened[BJ].account_number
    backdated = idpb.GrantConsentRequest(
        request_id="outsider-backdated", account_number=zj, category=common_pb2.DATA_CATEGORY_EV_CHARGING,
        channel=common_pb2.CHANNEL_INTERNET_PLATFORM, recorded_by="alipay",
    )  # fmt: skip
    backdated.effective_at.FromDatetime(opened[ZJ].opened_at.ToDatetime(tzinfo=UTC) - timedelta(days=8))
    assert refusal(lambda: platform.identity.GrantConsent(backdated, metadata=platform.md(), timeout=30)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_EFFECTIVE_AT",
    )
    for account in (zj, bj):  # the demo partner's behaviours, and both regions share this person's data (ADR 0610)
        for category in (common_pb2.DATA_CATEGORY_EV_CHARGING, common_pb2.DATA_CATEGORY_TRANSIT,
                         common_pb2.DATA_CATEGORY_CYCLING, common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING):  # fmt: skip
            grant(platform, account, category)

    for region in (ZJ, BJ):  # a day in each region where the person holds an account: 690 points each
        results = submit_a_day(partner, system.data_dir, region, opened[region]).results
        before_opening, *day = results
        assert (before_opening.outcome, before_opening.reason, before_opening.points) == (
            inpb.EVENT_OUTCOME_REJECTED,
            "CONSENT_MISSING",
            0,
        ), before_opening
        assert [result.outcome for result in day] == [inpb.EVENT_OUTCOME_ACCEPTED] * 12, day
        assert sum(result.points for result in day) == 690
    assert balance(platform, zj).balance.available_points == 690
    assert balance(platform, bj).balance.available_points == 690

    used, cancelled = redeem_topup(platform, zj, "outsider-topup-1"), redeem_topup(platform, zj, "outsider-topup-2")
    use = rpb.UseVoucherRequest(request_id="outsider-use", code=used, merchant_id="hz-metro")
    assert platform.rewards.UseVoucher(use, metadata=platform.md(ZJ), timeout=30).voucher.state == (
        rpb.VOUCHER_STATE_USED
    )
    cancel = rpb.CancelVoucherRequest(request_id="outsider-cancel", code=cancelled, reason="changed my mind")
    platform.rewards.CancelVoucher(cancel, metadata=platform.md(ZJ), timeout=30)
    assert balance(platform, zj).balance.available_points == 590  # 690 - 100 used; the cancelled voucher refunded

    authorization = platform.identity.IssueResidentAuthorization(
        idpb.IssueResidentAuthorizationRequest(
            request_id="outsider-move", account_number=zj, operation=idpb.RESIDENT_OPERATION_CROSS_REGION_TRANSFER,
            amount_points=400, to_account=bj,
        ),
        metadata=platform.md(),
        timeout=30,
    ).authorization  # fmt: skip
    moved = platform.gateway.CreateCrossRegionTransfer(
        gw.CreateCrossRegionTransferRequest(
            transfer_id="outsider-move", from_account=zj, to_account=bj, amount_points=400,
            resident_authorization=authorization,
        ),
        metadata=platform.md(),
        timeout=60,
    ).transfer  # fmt: skip
    assert moved.state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED and moved.authorized_by == "platform:alipay"
    assert balance(platform, zj).balance.available_points == 190
    assert balance(platform, bj).balance.available_points == 1_090

    # A tree costs 1,000 points: the Beijing account, with its own day and the points moved in, plants one.
    donate = rpb.DonateRequest(request_id="outsider-tree", account_number=bj, project_id="trees", amount_points=1_000)
    assert platform.rewards.Donate(donate, metadata=platform.md(), timeout=30).units == 1
    assert balance(platform, bj).balance.available_points == 90

    regions = platform.gateway.ListRegions(gw.ListRegionsRequest(), metadata=platform.md(), timeout=30).regions
    assert {region.health for region in regions} == {"SERVING"}
    assert not any(region.ledger_address for region in regions)  # a platform needs no internal address
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert {"carbon.identity.v1.IdentityService", "carbon.ingest.v1.IngestService"} <= set(services)


def refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    with pytest.raises(grpc.RpcError) as caught:
        call()
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None, caught.value
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return caught.value.code(), info.reason  # type: ignore[attr-defined]


@pytest.mark.timeout(3 * UP_DEADLINE_S)
def test_outsiders_without_the_right_credentials_are_refused_and_the_books_do_not_change(
    system: System, channel: grpc.Channel
) -> None:
    ops = Outsider(channel, key(system, "gateway-ops-api-key"))
    account = open_account(Outsider(channel, key(system, "gateway-platform-key")), BJ).account_number
    before = balance(ops, account).balance
    anonymous, wrong = Outsider(channel, ""), Outsider(channel, "not-a-key")
    partner = Outsider(channel, key(system, "gateway-partner-key"))
    provincial = Outsider(channel, key(system, "gateway-provincial-platform-key"))  # acts for the first region only
    mint = lpb.PostTransfersRequest(
        transfers=[lpb.Transfer(transfer_id="mint", debit_account="system:issuance", credit_account=account,
                                amount_points=1_000_000, code=lpb.TRANSFER_CODE_EARN)]
    )  # fmt: skip
    bind = idpb.OpenAccountRequest(
        request_id="hijack", channel=common_pb2.CHANNEL_INTERNET_PLATFORM, name="李四", id_number=ID_NUMBER,
        binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="2088-thief"),
    )  # fmt: skip
    read = lpb.GetBalanceRequest(account=account)
    cases = [
        (lambda: anonymous.ledger.GetBalance(read, metadata=anonymous.md(), timeout=30), "CREDENTIALS_MISSING"),
        (lambda: wrong.ledger.GetBalance(read, metadata=wrong.md(), timeout=30), "CREDENTIALS_INVALID"),
        (lambda: wrong.identity.OpenAccount(bind, metadata=wrong.md(BJ), timeout=30), "CREDENTIALS_INVALID"),
        (lambda: partner.ledger.GetBalance(read, metadata=partner.md(), timeout=30), "METHOD_NOT_ALLOWED_FOR_CALLER"),
        (lambda: provincial.ledger.GetBalance(read, metadata=provincial.md(), timeout=30), "CALLER_REGION_MISMATCH"),
        (lambda: ops.ledger.PostTransfers(mint, metadata=ops.md(BJ), timeout=30), "METHOD_NOT_SERVED_BY_GATEWAY"),
        (
            lambda: partner.identity.OpenAccount(bind, metadata=partner.md(BJ), timeout=30),
            "METHOD_NOT_ALLOWED_FOR_CALLER",
        ),
    ]
    for call, reason in cases:
        assert refusal(call)[1] == reason
    after = balance(ops, account).balance
    assert (after.available_points, after.total_points) == (before.available_points, before.total_points)
