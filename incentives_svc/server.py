"""gRPC servicer for carbon.incentives.v1.IncentivesService: translates messages (wire.py) and calls service/; and
the wiring of one region's incentives service from its settings."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from sqlalchemy import Engine

from carbon.incentives.v1 import incentives_service_pb2 as pb
from carbon.incentives.v1 import incentives_service_pb2_grpc as pb_grpc
from incentives_svc import wire
from incentives_svc.clients import IdentityClient, IngestClient, LedgerClient
from incentives_svc.service.campaigns import Campaigns
from incentives_svc.service.closing import Closing
from incentives_svc.service.eligibility import Eligibility
from incentives_svc.service.following import Following, FollowingLoop
from incentives_svc.service.offers import Offers
from incentives_svc.service.payments import Payments
from incentives_svc.service.personalisation import Personalisation
from incentives_svc.settings import IncentivesSettings
from service_kit.clock import CHINA_STANDARD_TIME, Clock, system_clock
from service_kit.errors import InvalidArgument
from service_kit.failures import idempotent
from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IncentivesService"].full_name


@dataclass(frozen=True)
class Incentives:
    """The use cases of one region's incentives service, wired (build)."""

    settings: IncentivesSettings
    campaigns: Campaigns
    offers: Offers
    personalisation: Personalisation
    following: Following
    payments: Payments
    closing: Closing
    clock: Clock


class IncentivesServiceServicer(pb_grpc.IncentivesServiceServicer):
    def __init__(self, incentives: Incentives) -> None:
        self._incentives = incentives

    def CreateCampaign(
        self, request: pb.CreateCampaignRequest, context: grpc.ServicerContext
    ) -> pb.CreateCampaignResponse:
        if not request.HasField("campaign"):
            raise InvalidArgument("campaign", "is required")
        campaign = self._incentives.campaigns.create(request.request_id, wire.spec_from(request.campaign))
        return pb.CreateCampaignResponse(campaign=wire.campaign_message(campaign))

    @idempotent
    def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: grpc.ServicerContext
    ) -> pb.ListCampaignsResponse:
        campaigns = self._incentives.campaigns.all()
        return pb.ListCampaignsResponse(campaigns=[wire.campaign_message(c) for c in campaigns])

    @idempotent
    def ListOffers(self, request: pb.ListOffersRequest, context: grpc.ServicerContext) -> pb.ListOffersResponse:
        views, personalised = self._incentives.offers.list_offers(request.account_number, request.max_results)
        return pb.ListOffersResponse(offers=[wire.offer_message(v) for v in views], personalised=personalised)

    @idempotent
    def ExplainOffer(self, request: pb.ExplainOfferRequest, context: grpc.ServicerContext) -> pb.ExplainOfferResponse:
        view = self._incentives.offers.explain(request.account_number, request.offer_id)
        return pb.ExplainOfferResponse(offer=wire.offer_message(view))

    def AcceptOffer(self, request: pb.AcceptOfferRequest, context: grpc.ServicerContext) -> pb.AcceptOfferResponse:
        view = self._incentives.offers.accept(request.request_id, request.account_number, request.offer_id)
        return pb.AcceptOfferResponse(offer=wire.offer_message(view))

    def SetPersonalisation(
        self, request: pb.SetPersonalisationRequest, context: grpc.ServicerContext
    ) -> pb.SetPersonalisationResponse:
        deleted = self._incentives.personalisation.set(request.request_id, request.account_number, request.enabled)
        return pb.SetPersonalisationResponse(profile_deleted=deleted)

    @idempotent
    def GetProfile(self, request: pb.GetProfileRequest, context: grpc.ServicerContext) -> pb.GetProfileResponse:
        profile, updated_at = self._incentives.offers.profile(request.account_number)
        today = self._incentives.clock().astimezone(CHINA_STANDARD_TIME).date()
        return wire.profile_message(profile, updated_at, today)


def build(settings: Settings, engine: Engine, clock: Clock = system_clock) -> Incentives:
    own = IncentivesSettings.from_settings(settings)
    deadline_s = own.rpc_deadline_s
    ingest = IngestClient(own.ingest_address, settings, deadline_s)
    identity = IdentityClient(own.identity_address, settings, deadline_s)
    ledger = LedgerClient(own.ledger_address, settings, deadline_s)
    eligibility = Eligibility(engine, identity)
    payments = Payments(engine, ledger, clock)
    closing = Closing(engine, ledger, clock)
    return Incentives(
        settings=own,
        campaigns=Campaigns(engine, ledger, ingest, settings.region_code, clock),
        offers=Offers(engine, eligibility, settings.region_code, clock),
        personalisation=Personalisation(engine, settings.region_code, clock),
        following=Following(engine, ingest, eligibility, payments, clock, own.follow_page_size, closing),
        closing=closing,
        payments=payments,
        clock=clock,
    )


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    incentives = build(settings, engine)
    interval_ms = incentives.settings.follow_interval_ms
    loop = FollowingLoop(incentives.following, interval_ms / 1000).start() if interval_ms else None

    def stop() -> None:
        if loop is not None:
            loop.stop()

    servicer = IncentivesServiceServicer(incentives)
    return [Registration(pb_grpc.add_IncentivesServiceServicer_to_server, servicer, SERVICE_NAME, on_stop=stop)]
