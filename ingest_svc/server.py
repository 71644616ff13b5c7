"""gRPC servicer for carbon.ingest.v1.IngestService: translates messages (wire.py) and calls the use cases
(service/); plus the wiring of those use cases from settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from sqlalchemy import Engine

from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from ingest_svc import wire
from ingest_svc.clients import IdentityClient, LedgerClient
from ingest_svc.domain.catalog import load_catalog
from ingest_svc.domain.results import ACCEPTED, DUPLICATE
from ingest_svc.service.account_events import account_events
from ingest_svc.service.admission import Admission, Batch
from ingest_svc.service.claims import activity_claims
from ingest_svc.service.consent import ConsentCheck
from ingest_svc.service.crash_points import crash_points
from ingest_svc.service.crediting import Crediting, InFlight
from ingest_svc.service.explain import explain
from ingest_svc.service.following import Following
from ingest_svc.service.orphan_claims import OrphanClaims
from ingest_svc.service.owed_credits import OwedCredits
from ingest_svc.service.partners import Partners
from ingest_svc.service.recording import Recorder
from ingest_svc.service.rules import Rules
from ingest_svc.service.statistics import Statistics
from ingest_svc.service.submission import Submissions
from ingest_svc.settings import IngestSettings
from ingest_svc.store.dedupe import build_dedupe
from ingest_svc.store.secret_box import EMBEDDED_DEFAULT_KEY, SecretBox
from service_kit import failures, paging
from service_kit.clock import Clock, system_clock
from service_kit.errors import DomainError, InvalidArgument, Unavailable
from service_kit.failures import idempotent
from service_kit.paging import page_size
from service_kit.ratelimit import build_limiter
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.wire import to_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IngestService"].full_name
log = logging.getLogger("carbon.ingest")
Item = TypeVar("Item")


@dataclass(frozen=True)
class Ingest:
    """The use cases of one ingest service and the clients they call, wired (build)."""

    settings: IngestSettings
    engine: Engine
    identity: IdentityClient
    ledger: LedgerClient
    submissions: Submissions
    crediting: Crediting
    rules: Rules
    partners: Partners
    statistics: Statistics
    following: Following


class IngestServiceServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self._submissions = ingest.submissions
        self._rules = ingest.rules
        self._partners = ingest.partners

    def SubmitEvents(self, request: pb.SubmitEventsRequest, context: grpc.ServicerContext) -> pb.SubmitEventsResponse:
        return wire.submit_response(self._submissions.submit(_batch(request)))

    def StreamEvents(
        self, request_iterator: Iterator[pb.StreamEventsRequest], context: grpc.ServicerContext
    ) -> pb.StreamEventsResponse:
        """Each batch commits on its own. A batch refused as a whole (bad signature, too large, rate limited, a
        dependency down) ends the stream with that batch's status; its ErrorInfo metadata carries the summary of the
        batches committed before it and the failed batch's index and id, so the feed resumes there
        (docs/adr/0404-stream-failure-reports-what-was-committed.md)."""
        summary = pb.StreamEventsResponse()
        for index, message in enumerate(request_iterator):
            try:
                results = self._submissions.submit(_batch(message.batch))
            except DomainError as error:
                error.metadata.update(_stream_progress(summary, index, message.batch.batch_id))
                raise
            except Exception as error:
                # A database or Redis outage ends the stream as UNAVAILABLE with the same progress report.
                failure = failures.classify(error)
                if failure is None or failure.code != grpc.StatusCode.UNAVAILABLE:
                    raise
                progress = _stream_progress(summary, index, message.batch.batch_id)
                raise Unavailable(failure.reason, failure.message, progress, failure.retry_delay) from error
            summary.batches += 1
            for result in results:
                if result.outcome == ACCEPTED:
                    summary.accepted += 1
                    summary.points += result.points
                elif result.outcome == DUPLICATE:
                    summary.duplicates += 1
                else:
                    summary.rejected += 1
        return summary

    @idempotent
    def ExplainScore(self, request: pb.ExplainScoreRequest, context: grpc.ServicerContext) -> pb.ExplainScoreResponse:
        explained = explain(self._ingest.engine, self._rules, request.partner_id, request.event_id)
        return pb.ExplainScoreResponse(
            result=wire.event_result(explained.result),
            behaviour=explained.row.behaviour,
            rule_version_id=explained.row.rule_version_id,
            counted_before_today=explained.row.counted_before_milli,
            consent_allowed=True,
            consent_reason=explained.consent_reason,
            points_per_unit=explained.points_per_unit,
            co2e_factor=explained.co2e_factor,
            co2e_source=explained.co2e_source,
            cap_per_day=explained.cap_per_day,
            explanation=explained.text,
            consent_category=wire.data_category(explained.consent_category),
            activity_holder=wire.activity_holder(explained.holder),
        )

    @idempotent
    def ListAccountEvents(
        self, request: pb.ListAccountEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAccountEventsResponse:
        rows, token = account_events(self._ingest.engine, request.account_number, request.page_token, request.page_size)
        return pb.ListAccountEventsResponse(events=[wire.account_event(row) for row in rows], next_page_token=token)

    @idempotent
    def ListBehaviours(
        self, request: pb.ListBehavioursRequest, context: grpc.ServicerContext
    ) -> pb.ListBehavioursResponse:
        behaviours = self._rules.behaviours(request.region_code)
        chunk, token = _offset_page(behaviours, "behaviours", request.page_token, request.page_size)
        return pb.ListBehavioursResponse(behaviours=[wire.behaviour(b) for b in chunk], next_page_token=token)

    def CreateRuleVersion(
        self, request: pb.CreateRuleVersionRequest, context: grpc.ServicerContext
    ) -> pb.CreateRuleVersionResponse:
        if not request.HasField("rule") or not request.rule.HasField("effective_from"):
            raise InvalidArgument("rule.effective_from", "required")
        return pb.CreateRuleVersionResponse(rule=wire.rule(self._rules.create(wire.rule_from(request.rule))))

    @idempotent
    def ListRuleVersions(
        self, request: pb.ListRuleVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListRuleVersionsResponse:
        if request.in_force:
            versions = self._rules.in_force(request.behaviour, request.region_code)
        else:
            versions = self._rules.versions(request.behaviour, request.region_code)
        chunk, token = _offset_page(versions, "rule_versions", request.page_token, request.page_size)
        return pb.ListRuleVersionsResponse(rules=[wire.rule(r) for r in chunk], next_page_token=token)

    def RegisterPartner(
        self, request: pb.RegisterPartnerRequest, context: grpc.ServicerContext
    ) -> pb.RegisterPartnerResponse:
        known = set(self._rules.book().behaviours)
        registered, secret = self._partners.register(request.request_id, wire.partner_from(request.partner), known)
        return pb.RegisterPartnerResponse(partner=wire.partner(registered), secret=secret)

    @idempotent
    def GetPartner(self, request: pb.GetPartnerRequest, context: grpc.ServicerContext) -> pb.GetPartnerResponse:
        return pb.GetPartnerResponse(partner=wire.partner(self._partners.get(request.partner_id)))

    @idempotent
    def ListPartners(self, request: pb.ListPartnersRequest, context: grpc.ServicerContext) -> pb.ListPartnersResponse:
        size = page_size(request.page_size, default=100)
        found = self._partners.page(paging.decode_text(request.page_token, "partners") or "", size)
        token = paging.encode_token("partners", found[-1].partner_id) if len(found) == size else ""
        return pb.ListPartnersResponse(partners=[wire.partner(p) for p in found], next_page_token=token)

    def RotatePartnerSecret(
        self, request: pb.RotatePartnerSecretRequest, context: grpc.ServicerContext
    ) -> pb.RotatePartnerSecretResponse:
        key_id, secret, old_until = self._partners.rotate(request.request_id, request.partner_id)
        return pb.RotatePartnerSecretResponse(
            key_id=key_id, secret=secret, previous_key_valid_until=to_timestamp(old_until)
        )

    def UpdatePartnerBehaviours(
        self, request: pb.UpdatePartnerBehavioursRequest, context: grpc.ServicerContext
    ) -> pb.UpdatePartnerBehavioursResponse:
        known = set(self._rules.book().behaviours)
        partner, before = self._partners.change_behaviours(
            request.request_id, request.partner_id, list(request.allowed_behaviours), request.reason, known
        )
        return pb.UpdatePartnerBehavioursResponse(partner=wire.partner(partner), previous_behaviours=before)

    @idempotent
    def GetStatistics(
        self, request: pb.GetStatisticsRequest, context: grpc.ServicerContext
    ) -> pb.GetStatisticsResponse:
        totals = self._ingest.statistics.daily(
            request.region_code,
            wire.day_from(request.from_day, "from_day"),
            wire.day_from(request.to_day, "to_day"),
            request.behaviour,
        )
        return pb.GetStatisticsResponse(rows=[wire.statistics_row(total) for total in totals])

    @idempotent
    def ListAcceptedEvents(
        self, request: pb.ListAcceptedEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAcceptedEventsResponse:
        found, token = self._ingest.following.page(request.page_token, request.page_size)
        return pb.ListAcceptedEventsResponse(
            events=[wire.accepted_event(event) for event in found], next_page_token=token
        )


def _batch(request: pb.SubmitEventsRequest) -> Batch:
    events, canonical = wire.batch_events(request)
    return Batch(request.partner_id, request.batch_id, events, request.key_id, request.signature, canonical)


def _stream_progress(summary: pb.StreamEventsResponse, index: int, batch_id: str) -> dict[str, str]:
    return {
        "batches_committed": str(summary.batches),
        "accepted": str(summary.accepted),
        "duplicates": str(summary.duplicates),
        "rejected": str(summary.rejected),
        "points": str(summary.points),
        "failed_batch_index": str(index),
        "failed_batch_id": batch_id,
    }


def _offset_page(everything: Sequence[Item], kind: str, token: str, requested_size: int) -> tuple[Sequence[Item], str]:
    """A page of a list that fits in memory: the token holds the offset of the next page."""
    start = paging.decode_int(token, kind) or 0
    size = page_size(requested_size, default=100)
    more = start + size < len(everything)
    return everything[start : start + size], paging.encode_token(kind, start + size) if more else ""


def build(settings: Settings, engine: Engine, clock: Clock | None = None) -> Ingest:
    """Wires the use cases from settings: catalog synced, accelerators chosen, clients with deadlines."""
    own = IngestSettings.from_settings(settings)
    now = clock or system_clock
    catalog = load_catalog()
    rules = Rules(engine, now)
    rules.sync_catalog(catalog)
    key = settings.secret("ingest_partner_key").reveal()
    if not key:
        log.warning("no CARBON_SECRET_INGEST_PARTNER_KEY: partner secrets use the embedded development key")
    partners = Partners(engine, SecretBox(key or EMBEDDED_DEFAULT_KEY), now, own.key_grace)
    identity = IdentityClient(own.identity_address, own.rpc_deadline_s, settings)
    ledger = LedgerClient(own.ledger_address, own.rpc_deadline_s, settings)
    in_flight, crash_point = InFlight(), crash_points(own.crash_at)
    claims = activity_claims(settings, own.gateway_address, own.rpc_deadline_s, catalog.fingerprints)
    crediting = Crediting(engine, ledger, now, in_flight, crash_point, claims, own.claim_ahead)
    submissions = Submissions(
        engine,
        rules,
        Admission(partners, build_limiter(settings.redis_url, own.redis_key_prefix), now),
        ConsentCheck(identity, settings.region_code),
        Recorder(engine, in_flight, crash_point),
        crediting,
        build_dedupe(settings.redis_url, own.redis_key_prefix),
        now,
        catalog.acceptance,
        settings.region_code,
    )
    following = Following(engine, now, own.follow_settle_ms / 1000)
    return Ingest(own, engine, identity, ledger, submissions, crediting, rules, partners, Statistics(engine), following)


def registrations(settings: Settings, engine: Engine, clock: Clock | None = None) -> list[Registration]:
    ingest = build(settings, engine, clock)
    sweep = OwedCredits(ingest.crediting, ingest.settings.owed_sweep)
    orphans = orphan_claims(ingest, clock or system_clock)
    if ingest.settings.resume_on_start:
        sweep.start()
        if orphans is not None:
            orphans.start()

    def stop_sweeps() -> None:
        sweep.stop()
        if orphans is not None:
            orphans.stop()

    servicer = IngestServiceServicer(ingest)
    return [
        Registration(
            ingest_service_pb2_grpc.add_IngestServiceServicer_to_server, servicer, SERVICE_NAME, on_stop=stop_sweeps
        )
    ]


def orphan_claims(ingest: Ingest, clock: Clock) -> OrphanClaims | None:
    """The sweep of claims left by attempts that never recorded (ADR 0416); None when no claim is made ahead."""
    gateway = ingest.crediting.claims.gateway
    if gateway is None or not ingest.crediting.claims_ahead:
        return None
    return OrphanClaims(ingest.engine, gateway, clock, ingest.settings.orphan_sweep)
