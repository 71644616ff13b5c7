"""A provincial platform's journey through the carbon-account gateway, in Python, from protos/ and docs/ alone.

    python examples/python/journey.py --gateway 127.0.0.1:18050 --data-dir data

Needs grpcio, grpcio-tools and protobuf (pip install grpcio grpcio-tools protobuf); grpcio-status, if installed,
decodes the ErrorInfo of a refusal. The stubs are generated from protos/ into a temporary folder at start, so nothing
of the platform's own code is imported. Credentials are what `carbon up` writes into its data folder
(examples/README.md): the platform's and the data partner's gateway keys and the partner's signing secret.

The journey: open one person's accounts in two regions, record consent, a data partner submits a signed batch, read
the balance, redeem a reward, move points to the other region with the resident's authorization, then several
transfers in one batched call. Each step checks what the contract (docs/contract/README.md) promises and the script
exits 1 at the first that does not hold.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import importlib
import importlib.resources
import json
import secrets
import struct
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

REPO = Path(__file__).resolve().parents[2]
SOURCE, TARGET = "330000", "110000"  # Zhejiang and Beijing, as `carbon up` federates them
REWARD = "transit-topup"
TRANSFER_POINTS = 300  # leaves 100 of the 500 earned after the redemption, for the batched transfers
EARNED = 500
# Final states of a cross-region transfer (docs/contract/README.md, "Cross-region operations").
FINAL_TRANSFER_STATES = ("CROSS_REGION_TRANSFER_STATE_COMMITTED", "CROSS_REGION_TRANSFER_STATE_RELEASED")


def generate_stubs(protos: Path, out: Path) -> None:
    """Python modules for every proto under protos/, with grpcio-tools (the well-known types come with it)."""
    from grpc_tools import protoc

    files = [str(path.relative_to(protos)) for path in sorted(protos.rglob("*.proto"))]
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    args = ["protoc", f"-I{protos}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages, so these stubs and no others on the path are the ones imported.
    for folder in [out / "carbon", *(path for path in (out / "carbon").rglob("*") if path.is_dir())]:
        (folder / "__init__.py").touch()
    sys.path.insert(0, str(out))


def stubs(name: str) -> tuple[ModuleType, ModuleType]:
    """The messages and the service stubs of carbon/<name>/v1/<name>_service.proto."""
    messages = importlib.import_module(f"carbon.{name}.v1.{name}_service_pb2")
    services = importlib.import_module(f"carbon.{name}.v1.{name}_service_pb2_grpc")
    return messages, services


def id_number() -> str:
    """A resident ID number (GB 11643) with a valid check character: Beijing Chaoyang, born 1990, random serial."""
    first17 = f"110105{19900101 + secrets.randbelow(28)}{secrets.randbelow(1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(digit) * weight for digit, weight in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


def canonical_bytes(request: Any) -> bytes:
    """docs/contract/signing.md: the domain tag, then partner_id, batch_id and each event, big-endian, strings as a u32
    byte length and their UTF-8 bytes."""

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
    return bytes(out)


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a refusal (docs/contract/README.md, "Errors"), when grpcio-status can decode it."""
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
    except ImportError:
        return ""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok  {what}")


class Platform:
    """Calls through the gateway with one caller's key (metadata "authorization: Bearer <key>")."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self.key = key
        self.common = importlib.import_module("carbon.common.v1.common_pb2")
        self.identity, identity_grpc = stubs("identity")
        self.ingest, ingest_grpc = stubs("ingest")
        self.ledger, ledger_grpc = stubs("ledger")
        self.rewards, rewards_grpc = stubs("rewards")
        self.gateway, gateway_grpc = stubs("gateway")
        self.identity_stub = identity_grpc.IdentityServiceStub(channel)
        self.ingest_stub = ingest_grpc.IngestServiceStub(channel)
        self.ledger_stub = ledger_grpc.LedgerServiceStub(channel)
        self.rewards_stub = rewards_grpc.RewardsServiceStub(channel)
        self.gateway_stub = gateway_grpc.GatewayServiceStub(channel)

    def md(self, region: str = "") -> tuple[tuple[str, str], ...]:
        """Calls that name no account name their region in x-carbon-region."""
        auth = (("authorization", f"Bearer {self.key}"),)
        return (*auth, ("x-carbon-region", region)) if region else auth

    def balance(self, account: str) -> Any:
        request = self.ledger.GetBalanceRequest(account=account)
        return self.ledger_stub.GetBalance(request, metadata=self.md(), timeout=30).balance


def open_person(platform: Platform, run: str) -> dict[str, str]:
    """One person (one ID number) opens an account in each region through the platform."""
    person, phone, user = id_number(), f"138{secrets.randbelow(10**8):08d}", f"2088-{run}"
    accounts = {}
    for region in (SOURCE, TARGET):
        request = platform.identity.OpenAccountRequest(
            request_id=f"{run}-open-{region}",
            channel=platform.common.CHANNEL_INTERNET_PLATFORM,
            name="张三",
            id_number=person,
            phone_number=phone,
            binding=platform.common.ChannelBinding(platform="alipay", platform_user_id=user),
        )
        opened = platform.identity_stub.OpenAccount(request, metadata=platform.md(region), timeout=30)
        accounts[region] = opened.account.account_number
    check(all(number[:6] == region for region, number in accounts.items()), "accounts opened in both regions")
    return accounts


def grant_consents(platform: Platform, run: str, accounts: dict[str, str]) -> None:
    """EV charging data scores from now on (a consent cannot reach back before the account was opened); sharing with
    another region's platform (PIPL art. 23) is granted on both accounts before points move between them."""
    grants = [
        (accounts[SOURCE], "DATA_CATEGORY_EV_CHARGING"),
        *((account, "DATA_CATEGORY_CROSS_REGION_SHARING") for account in accounts.values()),
    ]
    for index, (account, category) in enumerate(grants):
        request = platform.identity.GrantConsentRequest(
            request_id=f"{run}-consent-{index}",
            account_number=account,
            category=platform.common.DataCategory.Value(category),
            channel=platform.common.CHANNEL_INTERNET_PLATFORM,
            recorded_by="alipay",
        )
        platform.identity_stub.GrantConsent(request, metadata=platform.md(), timeout=30)
    check(True, f"{len(grants)} consents granted")


def submit_signed_batch(partner: Platform, data_dir: Path, run: str, account: str) -> None:
    """One charging session of 100 kWh now (the daily cap; 5 points a kWh): 500 points. Its evidence_ref, the charger's
    session id, identifies the real-world activity nationwide (one session earns once)."""
    secret = json.loads((data_dir / "demo-partner-secrets.json").read_text())[SOURCE]
    batch = partner.ingest.SubmitEventsRequest(partner_id="demo-partner", batch_id=f"{run}-1", key_id=secret["key_id"])
    event = batch.events.add(
        event_id=f"{run}-charge-1",
        behaviour="ev_charging_kwh",
        quantity_milli=100_000,
        region_code=SOURCE,
        evidence_ref=f"charger-7:session-{run}",
    )
    event.account.account_number = account
    # Now, after the opening a moment ago: an event from before an account existed does not score.
    event.occurred_at.FromDatetime(datetime.now(UTC))
    batch.signature = hmac.new(secret["secret"].encode(), canonical_bytes(batch), hashlib.sha256).hexdigest()
    results = partner.ingest_stub.SubmitEvents(batch, metadata=partner.md(SOURCE), timeout=60).results
    outcomes = [partner.ingest.EventOutcome.Name(result.outcome) for result in results]
    check(outcomes == ["EVENT_OUTCOME_ACCEPTED"], f"signed batch accepted ({outcomes})")


def redeem(platform: Platform, run: str, account: str) -> int:
    """One unit of a reward; returns its price (Reward.price_points is the price of one unit)."""
    reward = platform.rewards_stub.GetReward(
        platform.rewards.GetRewardRequest(reward_id=REWARD), metadata=platform.md(SOURCE), timeout=30
    ).reward
    request = platform.rewards.RedeemRequest(request_id=f"{run}-redeem", account_number=account, reward_id=REWARD)
    redemption = platform.rewards_stub.Redeem(request, metadata=platform.md(), timeout=30).redemption
    check(len(redemption.vouchers) == 1, f"redeemed {REWARD} for {reward.price_points} points: one voucher")
    return int(reward.price_points)


def transfer_request(platform: Platform, transfer_id: str, accounts: dict[str, str], points: int) -> Any:
    """A transfer of `points` from the source account to the target one, with the resident's authorization of exactly
    it (IdentityService.IssueResidentAuthorization with request_id = transfer_id)."""
    authorization = platform.identity_stub.IssueResidentAuthorization(
        platform.identity.IssueResidentAuthorizationRequest(
            request_id=transfer_id,
            account_number=accounts[SOURCE],
            operation=platform.identity.RESIDENT_OPERATION_CROSS_REGION_TRANSFER,
            amount_points=points,
            to_account=accounts[TARGET],
        ),
        metadata=platform.md(),
        timeout=30,
    ).authorization
    return platform.gateway.CreateCrossRegionTransferRequest(
        transfer_id=transfer_id,
        from_account=accounts[SOURCE],
        to_account=accounts[TARGET],
        amount_points=points,
        resident_authorization=authorization,
    )


def move_points(platform: Platform, run: str, accounts: dict[str, str]) -> None:
    """A cross-region transfer with the resident's authorization; repeated until its state is final."""
    request = transfer_request(platform, f"{run}-move", accounts, TRANSFER_POINTS)
    deadline = time.monotonic() + 120
    while True:
        transfer = platform.gateway_stub.CreateCrossRegionTransfer(request, metadata=platform.md(), timeout=60).transfer
        state = platform.gateway.CrossRegionTransferState.Name(transfer.state)
        if state in FINAL_TRANSFER_STATES or time.monotonic() > deadline:
            break
        time.sleep(1)  # in progress: the same request again drives it on
    check(state == "CROSS_REGION_TRANSFER_STATE_COMMITTED", f"moved {TRANSFER_POINTS} points across regions ({state})")


def move_points_in_a_batch(platform: Platform, run: str, accounts: dict[str, str], left: int) -> None:
    """Three transfers in one CreateCrossRegionTransfers call, each answered on its own: one point moves, one transfer
    asks for more points than are left (recorded, then RELEASED with INSUFFICIENT_POINTS), and one without the
    resident's authorization is refused (FAILED, PERMISSION_DENIED) while the others go ahead."""
    unauthorized = transfer_request(platform, f"{run}-batch-3", accounts, 1)
    unauthorized.resident_authorization = ""
    batch = platform.gateway.CreateCrossRegionTransfersRequest(
        transfers=[
            transfer_request(platform, f"{run}-batch-1", accounts, 1),
            transfer_request(platform, f"{run}-batch-2", accounts, left + 1_000),
            unauthorized,
        ]
    )
    results = platform.gateway_stub.CreateCrossRegionTransfers(batch, metadata=platform.md(), timeout=60).results
    ok, failed = (
        platform.gateway.CROSS_REGION_TRANSFER_RESULT_STATUS_OK,
        platform.gateway.CROSS_REGION_TRANSFER_RESULT_STATUS_FAILED,
    )
    state_name = platform.gateway.CrossRegionTransferState.Name
    answered = [
        (result.transfer_id, state_name(result.transfer.state), result.transfer.failure_reason)
        if result.status == ok
        else (
            result.transfer_id,
            grpc.StatusCode.PERMISSION_DENIED.value[0] == result.failure_code,
            result.failure_reason,
        )
        for result in results
    ]
    check(
        [result.status for result in results] == [ok, ok, failed]
        and answered[0][1] == "CROSS_REGION_TRANSFER_STATE_COMMITTED"
        and answered[1][1:] == ("CROSS_REGION_TRANSFER_STATE_RELEASED", "INSUFFICIENT_POINTS")
        and answered[2][1:] == (True, "RESIDENT_AUTHORIZATION_REQUIRED")
        and results[2].failure_field == "resident_authorization",
        f"a batch of three transfers answered item by item ({answered})",
    )


def statement_adds_up(platform: Platform, account: str) -> None:
    """The statement, walked page by page until the token is empty: a page may hold fewer entries than asked, or
    none, while a token follows (docs/contract/README.md), so a reader stops on the token, not on a short page."""
    entries, token, pages = [], "", 0
    while True:
        request = platform.ledger.ListStatementEntriesRequest(account=account, page_size=2, page_token=token)
        page = platform.ledger_stub.ListStatementEntries(request, metadata=platform.md(), timeout=30)
        entries.extend(page.entries)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    total = sum(entry.amount_points for entry in entries)
    balance = platform.balance(account)
    check(
        total == balance.total_points and entries[0].balance_after_points == balance.total_points,
        f"statement of {len(entries)} entries in {pages} pages adds up to the balance ({total})",
    )


def unknown_account_is_not_found(platform: Platform, accounts: dict[str, str]) -> None:
    """A well-formed number nobody opened: NOT_FOUND UNKNOWN_ACCOUNT, not a zero balance."""
    known = accounts[SOURCE]
    stranger = known[:6] + ("000000000" if known[6:15] != "000000000" else "000000001")
    digits = [int(digit) for digit in stranger]  # Luhn check digit over the 15 digits
    total = sum(d if i % 2 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    stranger += str((10 - total % 10) % 10)
    try:
        platform.balance(stranger)
    except grpc.RpcError as error:
        code, reason = error.code(), reason_of(error)  # type: ignore[attr-defined]
        # Without grpcio-status the reason cannot be read here; the code alone still says it.
        check(code == grpc.StatusCode.NOT_FOUND and reason in ("", "UNKNOWN_ACCOUNT"), f"unknown account: {reason}")
        return
    check(False, "an unknown account is refused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True, help="the gateway's address, host:port")
    parser.add_argument("--data-dir", required=True, type=Path, help="`carbon up`'s data folder (the credentials)")
    parser.add_argument("--protos", type=Path, default=REPO / "protos", help="the protos folder")
    args = parser.parse_args()
    data_dir: Path = args.data_dir
    run = f"py{secrets.token_hex(4)}"  # request ids of their own on every run
    with tempfile.TemporaryDirectory() as generated:
        generate_stubs(args.protos, Path(generated))
        carbon = importlib.import_module("carbon")
        check(Path(carbon.__file__ or "").is_relative_to(generated), "stubs generated from protos/ only")
        with grpc.insecure_channel(args.gateway) as channel:
            platform = Platform(channel, (data_dir / "gateway-platform-key").read_text().strip())
            partner = Platform(channel, (data_dir / "gateway-partner-key").read_text().strip())
            accounts = open_person(platform, run)
            grant_consents(platform, run, accounts)
            submit_signed_batch(partner, data_dir, run, accounts[SOURCE])
            check(platform.balance(accounts[SOURCE]).available_points == EARNED, f"balance {EARNED} points")
            price = redeem(platform, run, accounts[SOURCE])
            move_points(platform, run, accounts)
            left = platform.balance(accounts[SOURCE]).available_points
            check(left == EARNED - price - TRANSFER_POINTS, f"source balance {left}")
            check(platform.balance(accounts[TARGET]).available_points == TRANSFER_POINTS, "target balance")
            move_points_in_a_batch(platform, run, accounts, left)
            check(platform.balance(accounts[SOURCE]).available_points == left - 1, "source balance after the batch")
            check(platform.balance(accounts[TARGET]).available_points == TRANSFER_POINTS + 1, "target after the batch")
            statement_adds_up(platform, accounts[SOURCE])
            unknown_account_is_not_found(platform, accounts)
    print("journey complete")


if __name__ == "__main__":
    main()
