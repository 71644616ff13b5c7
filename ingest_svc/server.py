"""gRPC servicer for carbon.ingest.v1.IngestService: translates messages, holds no rules."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import Engine

from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from ingest_svc import limits, wire
from ingest_svc.admin import Partners, Rules
from ingest_svc.catalog import load_catalog
from ingest_svc.clients import IdentityClient, LedgerClient
from ingest_svc.domain.events import Acceptance
from ingest_svc.domain.partners import Partner
from ingest_svc.domain.scoring import points_per_unit
from ingest_svc.secret_box import EMBEDDED_DEFAULT_KEY, SecretBox
from ingest_svc.service import Batch, Result, Submissions
from service_kit.errors import DomainError, InvalidArgument
from service_kit.paging import page_size
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.wire import to_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IngestService"].full_name
log = logging.getLogger("carbon.ingest")
Clock = Callable[[], datetime]
_OUTCOMES = {"ACCEPTED": pb.EVENT_OUTCOME_ACCEPTED, "DUPLICATE": pb.EVENT_OUTCOME_DUPLICATE}


# Outcome names as wire enums: "" has none, and every name not listed is a rejection.
_OUTCOME_OF = {"": pb.EVENT_OUTCOME_UNSPECIFIED, **_OUTCOMES}


def _outcome(name: str) -> pb.EventOutcome.ValueType:
    return _OUTCOME_OF.get(name, pb.EVENT_OUTCOME_REJECTED)


def _fill_result(message: pb.EventResult, result: Result) -> None:
    """Sets a fresh EventResult field by field, leaving empty fields unset (proto3 scalars have no presence, so it is
    the same message as constructing it with every field): in place, no message per result is built and copied."""
    message.event_id = result.event_id
    message.outcome = _outcome(result.outcome)
    if result.points:
        message.points = result.points
    if result.co2e_grams:
        message.co2e_grams = result.co2e_grams
    if result.transfer_id:
        message.ledger_transfer_id = result.transfer_id
    if result.reason:
        message.reason = result.reason
    if result.message:
        message.message = result.message
    if result.first_outcome:
        message.first_outcome = _outcome(result.first_outcome)


def _result(result: Result) -> pb.EventResult:
    message = pb.EventResult()
    _fill_result(message, result)
    return message


def _response(results: Sequence[Result]) -> pb.SubmitEventsResponse:
    """One EventResult per result, each filled in place (a message per result copied into the list cost ~3x)."""
    response = pb.SubmitEventsResponse()
    add = response.results.add
    outcome_of, rejected = _OUTCOME_OF.get, pb.EVENT_OUTCOME_REJECTED
    # _fill_result inlined, the result unpacked: no call and no attribute read per field of every result.
    for event_id, outcome, points, co2e_grams, transfer_id, reason, text, first_outcome in results:
        message = add()
        message.event_id = event_id
        message.outcome = outcome_of(outcome, rejected)
        if points:
            message.points = points
        if co2e_grams:
            message.co2e_grams = co2e_grams
        if transfer_id:
            message.ledger_transfer_id = transfer_id
        if reason:
            message.reason = reason
        if text:
            message.message = text
        if first_outcome:
            message.first_outcome = outcome_of(first_outcome, rejected)
    return response


def _partner(partner: Partner) -> pb.Partner:
    return pb.Partner(
        partner_id=partner.partner_id,
        name=partner.name,
        kind=pb.PartnerKind.Value(f"PARTNER_KIND_{partner.kind}"),
        allowed_behaviours=list(partner.allowed_behaviours),
        allowed_regions=list(partner.allowed_regions),
        rate_limit_per_second=partner.rate_limit_per_second,
        active_key_id=partner.active_key_id,
        active=partner.active,
    )


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


def _page(token: str, field: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidArgument(field, "not a page token from this service")
    return int(token)


class IngestServiceServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    def __init__(self, submissions: Submissions, rules: Rules, partners: Partners) -> None:
        self._submissions = submissions
        self._rules = rules
        self._partners = partners

    def _batch(self, request: pb.SubmitEventsRequest) -> Batch:
        events, canonical = wire.batch_events(request)
        return Batch(
            partner_id=request.partner_id,
            batch_id=request.batch_id,
            events=events,
            key_id=request.key_id,
            signature=request.signature,
            canonical=canonical,
        )

    def SubmitEvents(self, request: pb.SubmitEventsRequest, context: grpc.ServicerContext) -> pb.SubmitEventsResponse:
        results = self._submissions.submit(self._batch(request))
        return _response(results)

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
                results = self._submissions.submit(self._batch(message.batch))
            except DomainError as error:
                error.metadata.update(_stream_progress(summary, index, message.batch.batch_id))
                raise
            summary.batches += 1
            for result in results:
                if result.outcome == "ACCEPTED":
                    summary.accepted += 1
                    summary.points += result.points
                elif result.outcome == "DUPLICATE":
                    summary.duplicates += 1
                else:
                    summary.rejected += 1
        return summary

    def ExplainScore(self, request: pb.ExplainScoreRequest, context: grpc.ServicerContext) -> pb.ExplainScoreResponse:
        result, row, rule = self._submissions.explain(request.partner_id, request.event_id)
        response = pb.ExplainScoreResponse(
            result=_result(result),
            behaviour=row["behaviour"],
            rule_version_id=row["rule_version_id"],
            counted_before_today=row["counted_before_milli"],
            consent_allowed=True,
            consent_reason="consent for the behaviour's data category was in force at the event's time",
        )
        if rule is not None:
            response.points_per_unit = points_per_unit(rule, row["tier"])
            response.co2e_factor = rule.co2e_factor_text()
            response.co2e_source = rule.co2e_source
            response.cap_per_day = rule.daily_cap_milli
        response.explanation = (
            f"{row['behaviour']} x {row['quantity_milli']}/1000 scored by {row['rule_version_id']}: "
            f"{row['counted_before_milli']} counted earlier that CST day ({row['day']}), cap {response.cap_per_day}, "
            f"counted {row['counted_milli']} -> {row['points']} points, {row['co2e_grams']} g CO2e"
            + (f"; {row['reason']}" if row["reason"] else "")
        )
        return response

    def ListBehaviours(
        self, request: pb.ListBehavioursRequest, context: grpc.ServicerContext
    ) -> pb.ListBehavioursResponse:
        start = _page(request.page_token, "page_token")
        size = page_size(request.page_size, default=100)
        everything = self._rules.behaviours(request.region_code)
        chunk = everything[start : start + size]
        token = str(start + size) if start + size < len(everything) else ""
        return pb.ListBehavioursResponse(behaviours=[wire.behaviour(b) for b in chunk], next_page_token=token)

    def CreateRuleVersion(
        self, request: pb.CreateRuleVersionRequest, context: grpc.ServicerContext
    ) -> pb.CreateRuleVersionResponse:
        if not request.HasField("rule") or not request.rule.HasField("effective_from"):
            raise InvalidArgument("rule.effective_from", "required")
        return pb.CreateRuleVersionResponse(rule=wire.rule(self._rules.create(wire.rule_from(request.rule))))

    def ListRuleVersions(
        self, request: pb.ListRuleVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListRuleVersionsResponse:
        start = _page(request.page_token, "page_token")
        size = page_size(request.page_size, default=100)
        everything = self._rules.versions(request.behaviour, request.region_code)
        chunk = everything[start : start + size]
        token = str(start + size) if start + size < len(everything) else ""
        return pb.ListRuleVersionsResponse(rules=[wire.rule(r) for r in chunk], next_page_token=token)

    def RegisterPartner(
        self, request: pb.RegisterPartnerRequest, context: grpc.ServicerContext
    ) -> pb.RegisterPartnerResponse:
        given = request.partner
        kind = pb.PartnerKind.Name(given.kind).removeprefix("PARTNER_KIND_")
        partner = Partner(
            partner_id=given.partner_id,
            name=given.name,
            kind="" if kind == "UNSPECIFIED" else kind,
            allowed_behaviours=tuple(given.allowed_behaviours),
            allowed_regions=tuple(given.allowed_regions),
            rate_limit_per_second=given.rate_limit_per_second,
        )
        known = set(self._rules.book().behaviours)
        registered, secret = self._partners.register(request.request_id, partner, known)
        return pb.RegisterPartnerResponse(partner=_partner(registered), secret=secret)

    def GetPartner(self, request: pb.GetPartnerRequest, context: grpc.ServicerContext) -> pb.GetPartnerResponse:
        return pb.GetPartnerResponse(partner=_partner(self._partners.get(request.partner_id)))

    def ListPartners(self, request: pb.ListPartnersRequest, context: grpc.ServicerContext) -> pb.ListPartnersResponse:
        size = page_size(request.page_size, default=100)
        found = self._partners.page(request.page_token, size)
        token = found[-1].partner_id if len(found) == size else ""
        return pb.ListPartnersResponse(partners=[_partner(p) for p in found], next_page_token=token)

    def RotatePartnerSecret(
        self, request: pb.RotatePartnerSecretRequest, context: grpc.ServicerContext
    ) -> pb.RotatePartnerSecretResponse:
        key_id, secret, old_until = self._partners.rotate(request.request_id, request.partner_id)
        return pb.RotatePartnerSecretResponse(
            key_id=key_id, secret=secret, previous_key_valid_until=to_timestamp(old_until)
        )

    def GetStatistics(
        self, request: pb.GetStatisticsRequest, context: grpc.ServicerContext
    ) -> pb.GetStatisticsResponse:
        rows = self._rules.statistics(
            request.region_code,
            wire.day_from(request.from_day, "from_day"),
            wire.day_from(request.to_day, "to_day"),
            request.behaviour,
        )
        return pb.GetStatisticsResponse(
            rows=[
                pb.StatisticsRow(
                    region_code=r["region_code"],
                    behaviour=r["behaviour"],
                    day=wire.day(r["day"]),
                    events=r["events"],
                    points=r["points"],
                    co2e_grams=r["co2e_grams"],
                )
                for r in rows
            ]
        )


def build(settings: Settings, engine: Engine, clock: Clock | None = None) -> tuple[Submissions, Rules, Partners]:
    """Wires the use cases from settings: catalog synced, accelerators chosen, clients with deadlines."""
    now = clock or (lambda: datetime.now(UTC))
    catalog = load_catalog()
    rules = Rules(engine, now)
    rules.sync_catalog(catalog)
    key = settings.secret("ingest_partner_key").reveal()
    if not key:
        log.warning("no CARBON_SECRET_INGEST_PARTNER_KEY: partner secrets use the embedded development key")
    grace_h = int(settings.extra.get("CARBON_INGEST_KEY_GRACE_HOURS", "24"))
    partners = Partners(engine, SecretBox(key or EMBEDDED_DEFAULT_KEY), now, timedelta(hours=grace_h))
    prefix = settings.extra.get("CARBON_INGEST_REDIS_PREFIX", f"carbon:ingest:{settings.region_code}:")
    dedupe, rate_limiter = limits.build(settings.redis_url, prefix)
    deadline_s = int(settings.extra.get("CARBON_INGEST_RPC_DEADLINE_MS", "10000")) / 1000
    submissions = Submissions(
        engine,
        rules,
        partners,
        IdentityClient(settings.extra.get("CARBON_IDENTITY_ADDRESS", ""), deadline_s),
        LedgerClient(settings.extra.get("CARBON_LEDGER_ADDRESS", ""), deadline_s),
        dedupe,
        rate_limiter,
        now,
        Acceptance(
            window=timedelta(days=catalog.acceptance.window_days),
            future_skew=timedelta(seconds=catalog.acceptance.future_skew_seconds),
        ),
        settings.region_code,
    )
    return submissions, rules, partners


def _resume_in_background(submissions: Submissions) -> None:
    def run() -> None:
        try:
            finished = submissions.resume_pending()
            if finished:
                log.info("credited events left pending by an earlier run", extra={"events": finished})
        except DomainError as error:
            log.warning("could not resume pending credits yet", extra={"reason": error.reason})

    threading.Thread(target=run, name="ingest-resume", daemon=True).start()


def registrations(settings: Settings, engine: Engine, clock: Clock | None = None) -> list[Registration]:
    submissions, rules, partners = build(settings, engine, clock)
    if settings.extra.get("CARBON_INGEST_RESUME_ON_START", "1") != "0":
        _resume_in_background(submissions)
    servicer = IngestServiceServicer(submissions, rules, partners)
    return [Registration(ingest_service_pb2_grpc.add_IngestServiceServicer_to_server, servicer, SERVICE_NAME)]
