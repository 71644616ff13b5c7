"""The bad inputs issue 14 found answered INTERNAL, each sent to the running services on PostgreSQL: every one is
INVALID_ARGUMENT with a BadRequest naming the field (and its ErrorInfo naming the first), before any service code."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as npb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from carbon.rewards.v1 import rewards_service_pb2_grpc
from service_kit import paging
from service_kit.accounts import new_account_number
from service_kit.status import error_details
from tests.faults.region import Region

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

BEFORE_YEAR_1 = Timestamp(seconds=-62_135_596_801)
AFTER_9999 = Timestamp(seconds=253_402_300_800)
BAD_NANOS = Timestamp(seconds=1_700_000_000, nanos=1_000_000_000)
NEGATIVE_NANOS = Timestamp(seconds=1_700_000_000, nanos=-1)
ACCOUNT = new_account_number("110000")
STUBS: dict[str, Callable[[grpc.Channel], object]] = {
    "identity_svc": identity_service_pb2_grpc.IdentityServiceStub,
    "gateway": gateway_service_pb2_grpc.GatewayServiceStub,
    "rewards_svc": rewards_service_pb2_grpc.RewardsServiceStub,
    "ingest_svc": ingest_service_pb2_grpc.IngestServiceStub,
    "ledger_svc": ledger_service_pb2_grpc.LedgerServiceStub,
}

CASES: list[tuple[str, str, Message, str]] = [
    # Timestamps out of range.
    (
        "identity_svc",
        "GrantConsent",
        ipb.GrantConsentRequest(request_id="r", account_number=ACCOUNT, category=1, effective_at=BEFORE_YEAR_1),  # type: ignore[arg-type]
        "effective_at.seconds",
    ),
    (
        "identity_svc",
        "CheckConsents",
        ipb.CheckConsentsRequest(questions=[ipb.ConsentQuestion(account_number=ACCOUNT, category=1, at=BAD_NANOS)]),  # type: ignore[arg-type]
        "questions[0].at.nanos",
    ),
    (
        "identity_svc",
        "CheckConsentColumns",
        ipb.CheckConsentColumnsRequest(account_numbers=[ACCOUNT], categories=[1], at_us=[-(2**62)]),  # type: ignore[list-item]
        "at_us[0]",
    ),
    ("gateway", "GetSettlementReport", gw.GetSettlementReportRequest(period_start=AFTER_9999), "period_start.seconds"),
    (
        "rewards_svc",
        "CreateReward",
        rpb.CreateRewardRequest(request_id="r", reward=rpb.Reward(reward_id="x", available_from=NEGATIVE_NANOS)),
        "reward.available_from.nanos",
    ),
    (
        "ingest_svc",
        "CreateRuleVersion",
        npb.CreateRuleVersionRequest(request_id="r", rule=npb.RuleVersion(effective_from=AFTER_9999)),
        "rule.effective_from.seconds",
    ),
    (
        "ledger_svc",
        "ListStatementEntries",
        lpb.ListStatementEntriesRequest(account=ACCOUNT, start_time=BEFORE_YEAR_1),
        "start_time.seconds",
    ),
    (  # before authentication: the batch is not signed at all
        "ingest_svc",
        "SubmitEvents",
        npb.SubmitEventsRequest(partner_id="p", batch_id="b", events=[npb.Event(event_id="e", occurred_at=BAD_NANOS)]),
        "events[0].occurred_at.nanos",
    ),
    # Enum values the enum does not declare.
    ("gateway", "ListCrossRegionTransfers", gw.ListCrossRegionTransfersRequest(state=99), "state"),  # type: ignore[arg-type]
    ("rewards_svc", "ListRewards", rpb.ListRewardsRequest(category=12345), "category"),  # type: ignore[arg-type]
    (
        "rewards_svc",
        "CreateReward",
        rpb.CreateRewardRequest(request_id="r", reward=rpb.Reward(reward_id="x", category=12345)),  # type: ignore[arg-type]
        "reward.category",
    ),
    ("rewards_svc", "ListVouchers", rpb.ListVouchersRequest(account_number=ACCOUNT, state=-1), "state"),  # type: ignore[arg-type]
    (
        "ingest_svc",
        "RegisterPartner",
        npb.RegisterPartnerRequest(request_id="r", partner=npb.Partner(partner_id="p", kind=12345)),  # type: ignore[arg-type]
        "partner.kind",
    ),
    # An update mask naming a field that is not there.
    (
        "rewards_svc",
        "UpdateReward",
        rpb.UpdateRewardRequest(request_id="r", reward=rpb.Reward(reward_id="x"), update_mask=["stock", "no_such"]),
        "update_mask[1]",
    ),
    # Page tokens: not ours, over-long, of another list.
    ("ledger_svc", "ListLots", lpb.ListLotsRequest(account=ACCOUNT, page_token="12"), "page_token"),
    ("ingest_svc", "ListBehaviours", npb.ListBehavioursRequest(page_token="9" * 600), "page_token"),
    (
        "rewards_svc",
        "ListVouchers",
        rpb.ListVouchersRequest(account_number=ACCOUNT, page_token=paging.encode_token("rewards", "x")),
        "page_token",
    ),
    ("identity_svc", "ListConsents", ipb.ListConsentsRequest(account_number=ACCOUNT, page_token="@@"), "page_token"),
    ("gateway", "ListRegions", gw.ListRegionsRequest(page_token="330000"), "page_token"),
    # NUL in look-up strings (PostgreSQL text cannot hold one).
    ("rewards_svc", "GetReward", rpb.GetRewardRequest(reward_id="a\x00"), "reward_id"),
    (
        "rewards_svc",
        "Redeem",
        rpb.RedeemRequest(request_id="r", account_number=ACCOUNT, reward_id="a\x00b"),
        "reward_id",
    ),
    ("ledger_svc", "GetTransfer", lpb.GetTransferRequest(transfer_id="\x00"), "transfer_id"),
    ("ledger_svc", "GetHold", lpb.GetHoldRequest(hold_id="h\x00"), "hold_id"),
    ("ingest_svc", "GetPartner", npb.GetPartnerRequest(partner_id="p\x00"), "partner_id"),
    ("ingest_svc", "ExplainScore", npb.ExplainScoreRequest(partner_id="p", event_id="e\x00"), "event_id"),
    (
        "identity_svc",
        "ResolveAccount",
        ipb.ResolveAccountRequest(binding=common_pb2.ChannelBinding(platform="a\x00", platform_user_id="u")),
        "binding.platform",
    ),
    ("gateway", "GetCrossRegionTransfer", gw.GetCrossRegionTransferRequest(transfer_id="t\x00"), "transfer_id"),
    # One bad entry of a repeated string (a column of thousands is checked whole first).
    ("gateway", "ClaimActivities", gw.ClaimActivitiesRequest(event_ids=["e1", "e\x00", "e3"]), "event_ids[1]"),
    ("gateway", "ClaimActivities", gw.ClaimActivitiesRequest(partner_ids=["p", "p" * 200]), "partner_ids[1]"),
    # A request id longer than its column.
    (
        "rewards_svc",
        "Redeem",
        rpb.RedeemRequest(request_id="r" * 200, account_number=ACCOUNT, reward_id="x"),
        "request_id",
    ),
]


@pytest.mark.parametrize(
    ("server", "method", "request_message", "field"),
    CASES,
    ids=[f"{method}:{field}" for _server, method, _request, field in CASES],
)
def test_bad_input_is_invalid_argument_naming_the_field(
    region: Region, server: str, method: str, request_message: Message, field: str
) -> None:
    stub = STUBS[server](region.channels[server])
    with pytest.raises(grpc.RpcError) as raised:
        getattr(stub, method)(request_message, timeout=10)
    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert field in [path for path, _ in details.violations], details
    assert details.metadata["field"] == details.violations[0][0]
