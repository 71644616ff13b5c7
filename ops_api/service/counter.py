"""The community centre counter: community events recorded for residents, redemptions, consents given in person.

Community events go through ingest like any partner's events: the API signs them as the community-centre partner
(its secret from CARBON_SECRET_COMMUNITY_PARTNER), so rules, caps, consent and dedupe apply unchanged.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from ops_api.context import OpsContext
from ops_api.domain.requests import idempotency_key
from ops_api.domain.staff import Staff
from ops_api.problems import Problem
from ops_api.wire import timestamp
from service_kit.partner_signing import sign_request
from service_kit.topology import RegionEntry

MILLI_PER_UNIT = 1000
# Behaviours counted in days: a record of N days is the N consecutive days (China time) ending on its day, one event
# each, so the daily cap of one day per day still applies to each day. Other behaviours (times) are N events on the
# record's day, each within that day's cap.
PER_DAY_BEHAVIOURS = frozenset({"sorting_supervisor_day"})
# Behaviours counted in a quantity (kg): a record is one event of that quantity, the day's cap applied to it.
WEIGHED_BEHAVIOURS = frozenset({"recycling_kg"})


def submit_community_event(
    context: OpsContext, region: RegionEntry, request: inpb.SubmitEventsRequest
) -> list[inpb.EventResult]:
    """The events' results from the region's ingest; when every one is rejected, 422 with the first one's reason."""
    results = list(context.regions.call("ingest", context.regions.ingest(region).SubmitEvents, request).results)
    if all(result.outcome == inpb.EVENT_OUTCOME_REJECTED for result in results):
        first = results[0]
        raise Problem(422, first.reason or "REJECTED", first.message or "the event was rejected", domain="ingest")
    return results


def community_event_request(
    context: OpsContext,
    staff: Staff,
    rid: str,
    region: RegionEntry,
    *,
    account_number: str,
    behaviour: str,
    quantity: int,
    occurred_at: datetime | None,
    evidence_ref: str,
) -> inpb.SubmitEventsRequest:
    """A batch of one event per unit recorded (community_event_times), keyed by the request id and signed with the
    region's community-partner secret; 503 when the secret is not configured."""
    secret = context.settings.community_partner_secret(region.region_code)
    if not secret:
        raise Problem(
            503,
            "COMMUNITY_PARTNER_NOT_CONFIGURED",
            "set CARBON_SECRET_COMMUNITY_PARTNER (the community-centre partner's signing secret)",
            {"region": region.region_code},
        )
    key = idempotency_key(staff, rid)
    weighed = behaviour in WEIGHED_BEHAVIOURS
    times = community_event_times(behaviour, 1 if weighed else quantity, occurred_at or context.clock())
    events = []
    for index, at in enumerate(times):
        # One unit keeps the request's key as its event id, as before multi-unit records.
        event_id = key if len(times) == 1 else f"{key}#{index + 1}"
        events.append(
            inpb.Event(
                event_id=event_id,
                account=common_pb2.AccountRef(account_number=account_number),
                behaviour=behaviour,
                quantity_milli=MILLI_PER_UNIT * (quantity if weighed else 1),
                occurred_at=timestamp(at),
                region_code=region.region_code,
                evidence_ref=community_evidence(staff, event_id, evidence_ref, index, len(times)),
            )
        )
    request = inpb.SubmitEventsRequest(partner_id=context.settings.community_partner_id, batch_id=key, events=events)
    sign_request(request, context.settings.community_partner_key_id, secret.reveal())
    return request


def community_evidence(staff: Staff, event_id: str, given: str, index: int, units: int) -> str:
    """What identifies each recorded unit as an activity (its fingerprint, ADR 0412). A reference staff typed (a
    sign-in sheet, a weighing ticket) is the activity's own, numbered per unit of a multi-unit record; without one,
    the record's own event id: a centre-wide default made every resident's planting of one day a single activity."""
    if given:
        return given if units == 1 else f"{given}#{index + 1}"
    return f"centre:{staff.centre_id or 'ops'}/record:{event_id}"


def community_event_times(behaviour: str, quantity: int, occurred_at: datetime) -> list[datetime]:
    """When each recorded unit happened, oldest first: the `quantity` days ending on occurred_at's day for a
    behaviour counted in days, else `quantity` times at occurred_at."""
    if behaviour in PER_DAY_BEHAVIOURS:
        return [occurred_at - timedelta(days=back) for back in range(quantity - 1, -1, -1)]
    return [occurred_at] * quantity


def redeem(
    context: OpsContext, staff: Staff, rid: str, account_number: str, region: RegionEntry, reward_id: str, quantity: int
) -> rpb.Redemption:
    stub = context.regions.rewards(region)
    request = rpb.RedeemRequest(
        request_id=idempotency_key(staff, rid),
        account_number=account_number,
        reward_id=reward_id,
        quantity=quantity,
        region_code=region.region_code,
    )

    return context.regions.call("rewards", stub.Redeem, request).redemption


def use_voucher(
    context: OpsContext, staff: Staff, rid: str, account_number: str, region: RegionEntry, code: str
) -> rpb.Voucher:
    """The voucher used at the staff member's centre; one of another account is refused as not found, so a code
    read out at the counter cannot be spent for someone else."""
    stub = context.regions.rewards(region)
    if not _owns_voucher(context, region, account_number, code):
        raise Problem(404, "VOUCHER_NOT_FOUND", f"code: no voucher {code} for this account", {"field": "code"})
    request = rpb.UseVoucherRequest(
        request_id=idempotency_key(staff, rid), code=code, merchant_id=f"centre:{staff.centre_id or 'ops'}"
    )
    return context.regions.call("rewards", stub.UseVoucher, request).voucher


def _owns_voucher(context: OpsContext, region: RegionEntry, account_number: str, code: str) -> bool:
    stub = context.regions.rewards(region)
    request = rpb.ListVouchersRequest(account_number=account_number)
    while True:
        page = context.regions.call("rewards", stub.ListVouchers, request)
        if any(voucher.code == code for voucher in page.vouchers):
            return True
        if not page.next_page_token:
            return False
        request.page_token = page.next_page_token


def record_consent(
    context: OpsContext,
    staff: Staff,
    rid: str,
    account_number: str,
    region: RegionEntry,
    category: str,
    grant: bool,
    guardian_account_number: str = "",
) -> ipb.ConsentRecord:
    """A consent the resident gave (grant) or withdrew at the counter, recorded in identity as given there; the
    category by its full name (DATA_CATEGORY_...). For a resident under 14 the guardian present decides (ADR 0206)."""
    stub = context.regions.identity(region)
    fields: dict[str, Any] = {
        "request_id": idempotency_key(staff, rid),
        "account_number": account_number,
        "category": common_pb2.DataCategory.Value(category),
        "channel": common_pb2.CHANNEL_COMMUNITY_CENTRE,
        "recorded_by": f"staff:{staff.user_id}",
        "guardian_account_number": guardian_account_number,
    }

    if grant:
        return context.regions.call("identity", stub.GrantConsent, ipb.GrantConsentRequest(**fields)).consent
    return context.regions.call("identity", stub.RevokeConsent, ipb.RevokeConsentRequest(**fields)).consent


# The printable summary's lines: (Chinese, English, field of GetMonthlySummaryResponse).
SUMMARY_LINES = (
    ("获得积分", "Points earned", "earned_points"),
    ("兑换使用", "Points redeemed", "redeemed_points"),
    ("退回积分", "Points refunded", "refunded_points"),
    ("过期积分", "Points expired", "expired_points"),
    ("公益捐赠", "Points donated", "donated_points"),
    ("转出其他地区", "Moved to another region", "transferred_out_points"),
    ("转入", "Moved in from another region", "transferred_in_points"),
    ("人工调整", "Adjusted by staff", "adjusted_points"),
    ("本月变化", "Change this month", "net_change_points"),
)


def printable_summary(summary: lpb.GetMonthlySummaryResponse) -> str:
    """The month on one page in large plain lines, Chinese first: what a resident takes home from the counter."""
    lines = [
        f"个人碳账户 月度账单 / Monthly carbon account summary  {summary.year}年{summary.month}月",
        f"账户 Account: {summary.account}",
        "",
    ]
    lines += [f"{zh} / {en}: {getattr(summary, name):,}" for zh, en, name in SUMMARY_LINES]
    lines += ["", f"减少碳排放 CO2e avoided: {summary.co2e_grams:,} 克 g"]
    lines += [
        f"  {b.behaviour or '-'}: {b.credits:,} 次, {b.points:,} 分, {b.co2e_grams:,} 克" for b in summary.by_behaviour
    ]
    lines += ["", "三个月内将过期的积分 / Points expiring in the next 3 months:"]
    expiring = [
        f"  {e.expires_on.year}-{e.expires_on.month:02d}-{e.expires_on.day:02d}: {e.amount_points:,}"
        for e in summary.expiring_soon
    ]
    lines += expiring or ["  无 / none"]
    return "\n".join(lines) + "\n"
