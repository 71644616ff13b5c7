"""gRPC servicer for carbon.identity.v1.IdentityService: translates messages (wire.py) and calls service/."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as pb
from carbon.identity.v1 import identity_service_pb2_grpc
from identity_svc import callers
from identity_svc.callers import requester
from identity_svc.clients import GatewayGuardians, GrpcPointsLedger, PointsLedger
from identity_svc.domain.accounts import validate_opening
from identity_svc.domain.consents import ConsentAction, validate_consent_question
from identity_svc.domain.corrections import validate_correction
from identity_svc.domain.resident_authorizations import validate_authorization_request
from identity_svc.keys import KeyRing, load_keyring, load_signing_key
from identity_svc.service.accounts import AccountService
from identity_svc.service.bindings import BindingService
from identity_svc.service.closing import ClosingService
from identity_svc.service.consents import ConsentService
from identity_svc.service.corrections import CorrectionService
from identity_svc.service.figures import account_figures
from identity_svc.service.hand_over_job import HandOverScheduler, list_job_runs
from identity_svc.service.reminder_delivery import Deliverer, FileSms, load_webhooks
from identity_svc.service.reminders import ReminderService
from identity_svc.service.resident_authorizations import ResidentAuthorizationService
from identity_svc.settings import IdentitySettings
from identity_svc.store.consent_cache import ConsentCache, InProcessConsentCache, RedisConsentCache
from identity_svc.wire import (
    account_message,
    answers_message,
    binding_from,
    binding_record_message,
    column_answers_message,
    column_moments,
    consent_message,
    job_run_message,
    question_columns,
    ref_from,
    resolved_message,
)
from identity_svc.wire_reminders import delivery_message, delivery_state, notices_from
from service_kit import identities, redis_client
from service_kit.clock import Clock, system_clock
from service_kit.failures import idempotent
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.wire import from_timestamp, from_unix_us, to_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name

# How GetAccount's errors name the parts of its consent question.
CONSENT_FIELDS = ("consent_category", "consent_at")
log = logging.getLogger("carbon.identity")


@dataclass(frozen=True)
class IdentityServices:
    accounts: AccountService
    consents: ConsentService
    closing: ClosingService
    bindings: BindingService
    resident_authorizations: ResidentAuthorizationService
    reminders: ReminderService
    corrections: CorrectionService


class IdentityServiceServicer(identity_service_pb2_grpc.IdentityServiceServicer):
    def __init__(self, services: IdentityServices) -> None:
        self._accounts = services.accounts
        self._consents = services.consents
        self._closing = services.closing
        self._bindings = services.bindings
        self._resident_authorizations = services.resident_authorizations
        self._reminders = services.reminders
        self._corrections = services.corrections

    def OpenAccount(self, request: pb.OpenAccountRequest, context: grpc.ServicerContext) -> pb.OpenAccountResponse:
        opening = validate_opening(
            request_id=request.request_id,
            channel=request.channel,
            name=request.name,
            id_number=request.id_number,
            phone_number=request.phone_number,
            binding=binding_from(request),
            community_centre_id=request.community_centre_id,
            staff_id=request.staff_id,
            today=self._accounts.today_in_china(),
            guardian_account_number=request.guardian_account_number,
        )
        view, created = self._accounts.open_account(opening, requester(context))
        return pb.OpenAccountResponse(account=account_message(view), created=created)

    @idempotent
    def GetAccount(self, request: pb.GetAccountRequest, context: grpc.ServicerContext) -> pb.GetAccountResponse:
        with_bindings = request.view != pb.ACCOUNT_VIEW_BASIC
        asks_consent = request.consent_category != common_pb2.DATA_CATEGORY_UNSPECIFIED
        at = from_timestamp(request.consent_at) if request.HasField("consent_at") else None
        if asks_consent:  # a malformed question is refused before anything is read
            validate_consent_question(request.consent_category, at, CONSENT_FIELDS)
        account = account_message(self._accounts.get_account(request.account_number, with_bindings))
        if not asks_consent:
            return pb.GetAccountResponse(account=account)
        # The account's answer and a consent question in one call: the gateway needs both per cross-region transfer.
        [verdict] = self._consents.check_columns(
            [request.account_number], [request.consent_category], [at], fields=CONSENT_FIELDS
        )
        return pb.GetAccountResponse(
            account=account, consent=pb.ConsentAnswer(allowed=verdict.allowed, reason=verdict.reason)
        )

    @idempotent
    def BatchGetAccounts(
        self, request: pb.BatchGetAccountsRequest, context: grpc.ServicerContext
    ) -> pb.BatchGetAccountsResponse:
        asks_consent = request.consent_category != common_pb2.DATA_CATEGORY_UNSPECIFIED
        at = from_timestamp(request.consent_at) if request.HasField("consent_at") else None
        if asks_consent:  # a malformed question is refused before anything is read, as by GetAccount
            validate_consent_question(request.consent_category, at, CONSENT_FIELDS)
        numbers = list(request.account_numbers)
        views = self._accounts.get_accounts(numbers, with_bindings=request.view != pb.ACCOUNT_VIEW_BASIC)
        lookups = [
            pb.AccountLookup() if view is None else pb.AccountLookup(found=True, account=account_message(view))
            for view in views
        ]
        if asks_consent:
            found = [index for index, view in enumerate(views) if view is not None]
            verdicts = self._consents.check_columns(
                [numbers[index] for index in found],
                [request.consent_category] * len(found),
                [at] * len(found),
                fields=CONSENT_FIELDS,
            )
            for index, verdict in zip(found, verdicts, strict=True):
                lookups[index].consent.SetInParent()  # present even when its fields hold their defaults
                lookups[index].consent.allowed = verdict.allowed
                lookups[index].consent.reason = verdict.reason
        return pb.BatchGetAccountsResponse(accounts=lookups)

    @idempotent
    def ResolveAccount(
        self, request: pb.ResolveAccountRequest, context: grpc.ServicerContext
    ) -> pb.ResolveAccountResponse:
        if request.WhichOneof("by") == "id_number":
            callers.require_ops_api_for_id_number("by.id_number")
        found = self._accounts.resolve(ref_from(request, "by", "by"))
        return pb.ResolveAccountResponse(
            account_number=found.account_number, state=pb.AccountState.ValueType(found.state)
        )

    @idempotent
    def BatchResolveAccounts(
        self, request: pb.BatchResolveAccountsRequest, context: grpc.ServicerContext
    ) -> pb.BatchResolveAccountsResponse:
        refs = [ref_from(ref, "ref", f"refs[{index}]") for index, ref in enumerate(request.refs)]
        results = self._accounts.resolve_many(refs)
        return pb.BatchResolveAccountsResponse(accounts=[resolved_message(found) for found in results])

    def FindAccountsByPersonKey(
        self, request: pb.FindAccountsByPersonKeyRequest, context: grpc.ServicerContext
    ) -> pb.FindAccountsByPersonKeyResponse:
        views = self._accounts.find_by_person_key(request.person_key)
        return pb.FindAccountsByPersonKeyResponse(accounts=[account_message(view) for view in views])

    @idempotent
    def ListBindings(self, request: pb.ListBindingsRequest, context: grpc.ServicerContext) -> pb.ListBindingsResponse:
        records, token = self._bindings.list_bindings(request.account_number, request.page_size, request.page_token)
        return pb.ListBindingsResponse(
            bindings=[binding_record_message(record) for record in records], next_page_token=token
        )

    def IssueResidentAuthorization(
        self, request: pb.IssueResidentAuthorizationRequest, context: grpc.ServicerContext
    ) -> pb.IssueResidentAuthorizationResponse:
        wanted = validate_authorization_request(
            request_id=request.request_id,
            account_number=request.account_number,
            operation=request.operation,
            amount_points=request.amount_points,
            to_account=request.to_account,
            reward_id=request.reward_id,
            quantity=request.quantity,
            staff_id=request.staff_id,
        )
        issued = self._resident_authorizations.issue(wanted, requester(context))
        return pb.IssueResidentAuthorizationResponse(
            authorization=issued.token, expires_at=to_timestamp(issued.expires_at), token_id=issued.token_id
        )

    def _record(
        self,
        action: ConsentAction,
        request: pb.GrantConsentRequest | pb.RevokeConsentRequest,
        context: grpc.ServicerContext,
    ) -> pb.ConsentRecord:
        record = self._consents.record(
            action,
            request_id=request.request_id,
            account_number=request.account_number,
            category=request.category,
            channel=request.channel,
            recorded_by=request.recorded_by,
            effective_at=from_timestamp(request.effective_at) if request.HasField("effective_at") else None,
            guardian_account_number=request.guardian_account_number,
            requester=requester(context),
        )
        return consent_message(record)

    def GrantConsent(self, request: pb.GrantConsentRequest, context: grpc.ServicerContext) -> pb.GrantConsentResponse:
        return pb.GrantConsentResponse(consent=self._record(ConsentAction.GRANT, request, context))

    def RevokeConsent(
        self, request: pb.RevokeConsentRequest, context: grpc.ServicerContext
    ) -> pb.RevokeConsentResponse:
        return pb.RevokeConsentResponse(consent=self._record(ConsentAction.REVOKE, request, context))

    @idempotent
    def ListConsents(self, request: pb.ListConsentsRequest, context: grpc.ServicerContext) -> pb.ListConsentsResponse:
        records, token = self._consents.history(request.account_number, request.page_size, request.page_token)
        return pb.ListConsentsResponse(consents=[consent_message(record) for record in records], next_page_token=token)

    @idempotent
    def CheckConsents(
        self, request: pb.CheckConsentsRequest, context: grpc.ServicerContext
    ) -> pb.CheckConsentsResponse:
        account_numbers, categories, moments = question_columns(request)
        return answers_message(self._consents.check_columns(account_numbers, categories, moments))

    @idempotent
    def CheckConsentColumns(
        self, request: pb.CheckConsentColumnsRequest, context: grpc.ServicerContext
    ) -> pb.CheckConsentColumnsResponse:
        moments = column_moments(request)
        verdicts = self._consents.check_columns(
            list(request.account_numbers), list(request.categories), moments, fields=("categories[{}]", "at_us[{}]")
        )
        return column_answers_message(verdicts)

    @idempotent
    def GetAccountFigures(
        self, request: pb.GetAccountFiguresRequest, context: grpc.ServicerContext
    ) -> pb.GetAccountFiguresResponse:
        channels = account_figures(self._accounts.engine, self._accounts.clock, request.year, request.month)
        return pb.GetAccountFiguresResponse(
            year=request.year,
            month=request.month,
            opened=sum(c.opened for c in channels),
            closed=sum(c.closed for c in channels),
            open_at_end=sum(c.open_at_end for c in channels),
            by_channel=[
                pb.ChannelAccountFigures(
                    channel=common_pb2.Channel.ValueType(c.channel),
                    opened=c.opened,
                    open_at_end=c.open_at_end,
                    closed=c.closed,
                )
                for c in channels
            ],
        )

    def CorrectRealNameRecord(
        self, request: pb.CorrectRealNameRecordRequest, context: grpc.ServicerContext
    ) -> pb.CorrectRealNameRecordResponse:
        correction = validate_correction(
            request_id=request.request_id,
            account_number=request.account_number,
            id_number=request.id_number,
            name=request.name,
            phone_number=request.phone_number,
            staff_id=request.staff_id,
            today=self._accounts.today_in_china(),
        )
        view = self._corrections.correct(correction, requester(context))
        return pb.CorrectRealNameRecordResponse(account=account_message(view))

    def CloseAccount(self, request: pb.CloseAccountRequest, context: grpc.ServicerContext) -> pb.CloseAccountResponse:
        view, disposed = self._closing.close(
            request.request_id,
            request.account_number,
            request.points_disposition,
            request.requested_by,
            requester(context),
        )
        return pb.CloseAccountResponse(account=account_message(view), disposed_points=disposed)

    @idempotent
    def SetReminderPreference(
        self, request: pb.SetReminderPreferenceRequest, context: grpc.ServicerContext
    ) -> pb.SetReminderPreferenceResponse:
        off = self._reminders.set_preference(request.account_number, request.reminders_off)
        return pb.SetReminderPreferenceResponse(account_number=request.account_number, reminders_off=off)

    @idempotent
    def QueueReminders(
        self, request: pb.QueueRemindersRequest, context: grpc.ServicerContext
    ) -> pb.QueueRemindersResponse:
        outcomes = self._reminders.queue(notices_from(request))
        return pb.QueueRemindersResponse(outcomes=[int(outcome) for outcome in outcomes])  # type: ignore[misc]

    @idempotent
    def ListReminderDeliveries(
        self, request: pb.ListReminderDeliveriesRequest, context: grpc.ServicerContext
    ) -> pb.ListReminderDeliveriesResponse:
        rows, token = self._reminders.list(delivery_state(request.state), request.page_size, request.page_token)
        return pb.ListReminderDeliveriesResponse(
            deliveries=[delivery_message(row) for row in rows], next_page_token=token
        )

    @idempotent
    def RetryReminderDelivery(
        self, request: pb.RetryReminderDeliveryRequest, context: grpc.ServicerContext
    ) -> pb.RetryReminderDeliveryResponse:
        return pb.RetryReminderDeliveryResponse(delivery=delivery_message(self._reminders.retry(request.notice_key)))

    @idempotent
    def GetGuardianStanding(
        self, request: pb.GetGuardianStandingRequest, context: grpc.ServicerContext
    ) -> pb.GetGuardianStandingResponse:
        answer = self._accounts.guardian_standing(request.account_number, request.platform)
        return pb.GetGuardianStandingResponse(standing=int(answer.standing), platform_bound=answer.platform_bound)  # type: ignore[arg-type]

    @idempotent
    def ListJobRuns(self, request: pb.ListJobRunsRequest, context: grpc.ServicerContext) -> pb.ListJobRunsResponse:
        now = self._accounts.clock()
        runs, leader, until_us = list_job_runs(self._accounts.engine, request.job, request.limit, now)
        response = pb.ListJobRunsResponse(runs=[job_run_message(run) for run in runs], leader=leader)
        if leader:
            response.lease_expires_at.CopyFrom(to_timestamp(from_unix_us(until_us)))
        return response


def consent_cache_for(settings: Settings) -> ConsentCache:
    if not settings.redis_url:
        return InProcessConsentCache()
    prefix = settings.extra.get("CARBON_IDENTITY_REDIS_PREFIX", f"carbon:identity:{settings.region_code}:")
    return RedisConsentCache(redis_client.connect(settings.redis_url), prefix)


def build_services(
    settings: Settings,
    engine: Engine,
    *,
    keys: KeyRing | None = None,
    cache: ConsentCache | None = None,
    ledger: PointsLedger | None = None,
    clock: Clock = system_clock,
) -> IdentityServices:
    keys = keys or load_keyring(settings)
    cache = cache or consent_cache_for(settings)
    if ledger is None and settings.extra.get("CARBON_LEDGER_ADDRESS"):
        ledger = GrpcPointsLedger(settings.extra["CARBON_LEDGER_ADDRESS"], settings=settings)
    own = IdentitySettings.from_settings(settings)
    remote_guardians = GatewayGuardians(own.gateway_address, settings=settings) if own.gateway_address else None
    accounts = AccountService(engine, keys, settings.region_code, cache, clock, remote_guardians)
    issuer = identities.regional(settings.region_code, "identity")
    return IdentityServices(
        accounts,
        ConsentService(engine, keys, cache, clock, accounts.record, settings.region_code, remote_guardians),
        ClosingService(accounts, ledger),
        BindingService(accounts),
        ResidentAuthorizationService(accounts, resident_authorization_key(settings), issuer),
        ReminderService(accounts),
        CorrectionService(accounts),
    )


def resident_authorization_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The signing key CARBON_RESIDENT_AUTH_KEY_FILE names; without one, resident authorizations are refused."""
    path = IdentitySettings.from_settings(settings).resident_auth_key_file
    if path is None:
        log.warning("no resident authorization key (CARBON_RESIDENT_AUTH_KEY_FILE): IssueResidentAuthorization refuses")
        return None
    return load_signing_key(path, "CARBON_RESIDENT_AUTH_KEY_FILE")


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    """The identity service; with CARBON_IDENTITY_REMINDERS=1 also the reminder delivery loop, with
    CARBON_IDENTITY_SCHEDULER=1 the daily hand-over job (ADR 0210), both stopped after the server drains."""
    services = build_services(settings, engine)
    servicer = IdentityServiceServicer(services)
    own = IdentitySettings.from_settings(settings)
    stops: list[Callable[[], None]] = []
    if own.reminders:
        sms_file = own.reminder_sms_file or settings.data_dir / f"sms-{settings.region_code}.jsonl"
        deliverer = Deliverer(
            services.accounts, load_webhooks(own.reminder_webhooks_file), FileSms(sms_file),
            tick_s=own.reminder_tick_ms / 1000,
        )  # fmt: skip
        deliverer.start()
        stops.append(deliverer.stop)
    if own.scheduler:
        hand_over = HandOverScheduler(engine, services.accounts.clock)
        hand_over.start()
        stops.append(hand_over.stop)
    add = identity_service_pb2_grpc.add_IdentityServiceServicer_to_server
    return [Registration(add, servicer, SERVICE_NAME, on_stop=_all(stops) if stops else None)]


def _all(stops: list[Callable[[], None]]) -> Callable[[], None]:
    def stop() -> None:
        for each in stops:
            each()

    return stop
