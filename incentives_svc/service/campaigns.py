"""Creating campaigns and funding their budgets in the ledger; listing them with what they paid.

The budget moves from system:issuance into the campaign's own ledger account (campaign:<id>) when the campaign is
created. The campaign row is written first, unfunded, so a ledger that is down leaves a campaign that is never
offered and that the same request funds later: the funding transfer's id is derived from the campaign, so it posts
once however often it is retried.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from incentives_svc.clients import IngestClient, LedgerClient, Posting
from incentives_svc.domain.campaigns import Campaign, CampaignSpec, campaign_id_for, check_request_id, check_spec
from incentives_svc.store import campaigns as stored
from service_kit.accounts import ISSUANCE_ACCOUNT
from service_kit.clock import Clock
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument

FUNDING_PREFIX = "incentive:fund:"


class Campaigns:
    def __init__(
        self, engine: Engine, ledger: LedgerClient, ingest: IngestClient, region_code: str, clock: Clock
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._ingest = ingest
        self._region_code = region_code
        self._clock = clock

    def create(self, request_id: str, spec: CampaignSpec) -> Campaign:
        check_request_id(request_id)
        check_spec(spec)
        self._check_behaviour_offered(spec.behaviour)
        campaign = self._recorded(request_id, spec)
        if campaign.funded:
            return campaign
        self._fund(campaign)
        return replace(campaign, funded=True)

    def _check_behaviour_offered(self, behaviour: str) -> None:
        """A campaign for a behaviour the region's catalog does not score could never pay a bonus, yet its budget would
        sit locked in the ledger until it ended: refused before anything is recorded. The catalog is asked each time
        (a campaign is created rarely) so that a behaviour added to the catalog is accepted at once."""
        offered = self._ingest.behaviour_codes(self._region_code)
        if behaviour not in offered:
            raise InvalidArgument(
                "campaign.behaviour",
                f"{behaviour!r} is not a behaviour of region {self._region_code}'s catalog "
                f"(offered: {', '.join(sorted(offered))})",
                reason="UNKNOWN_BEHAVIOUR",
            )

    def all(self) -> list[Campaign]:
        with self._engine.connect() as conn:
            return stored.all_campaigns(conn)

    def _recorded(self, request_id: str, spec: CampaignSpec) -> Campaign:
        """The campaign this request created before, or the one it creates now."""
        fingerprint = hashlib.sha256(repr(spec).encode()).hexdigest()
        campaign = Campaign(campaign_id_for(self._region_code, request_id), spec, self._clock())
        try:
            with self._engine.begin() as conn:
                found = stored.find_by_request(conn, request_id)
                if found is None:
                    stored.insert_campaign(conn, campaign, request_id, fingerprint)
                    return campaign
        except IntegrityError:  # a concurrent twin of this request inserted it first
            with self._engine.connect() as conn:
                found = stored.find_by_request(conn, request_id)
            assert found is not None
        existing, first_fingerprint = found
        if first_fingerprint != fingerprint:
            raise AlreadyExists("REQUEST_ID_REUSED", f"request_id {request_id!r} created another campaign")
        return existing

    def _fund(self, campaign: Campaign) -> None:
        funding = Posting(
            transfer_id=FUNDING_PREFIX + campaign.campaign_id,
            debit_account=ISSUANCE_ACCOUNT,
            credit_account=campaign.budget_account,
            amount_points=campaign.spec.budget_points,
            code=lpb.TRANSFER_CODE_ADJUST,
            reference=f"campaign {campaign.campaign_id}: budget",
        )
        (result,) = self._ledger.post([funding])
        if not result.posted:
            raise FailedPrecondition("FUNDING_REFUSED", f"the ledger refused the budget: {result.failure_reason}")
        with self._engine.begin() as conn:
            stored.mark_funded(conn, campaign.campaign_id)
