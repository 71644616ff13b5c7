"""Consent use cases: grant, revoke, list the history, and answer "may this event score?" in batches, cached."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn, cast

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from identity_svc import store
from identity_svc.domain.accounts import (
    AccountState,
    Channel,
    unknown_account,
    validate_account_number,
    validate_channel,
    validate_identifier,
)
from identity_svc.domain.consents import (
    MAX_QUESTIONS,
    UNKNOWN_TIMELINE,
    ConsentAction,
    ConsentEvent,
    ConsentRecord,
    ConsentTimeline,
    ConsentVerdict,
    DataCategory,
    Question,
    decide_consent,
    require_after_opening,
    validate_category,
    validate_effective_at,
)
from identity_svc.domain.guardians import GuardianAnswer
from identity_svc.domain.requesters import UNIDENTIFIED, Requester
from identity_svc.keys import KeyRing
from identity_svc.service.guardians import (
    NoGateway,
    RecordReader,
    RemoteGuardians,
    ask_remote_guardian,
    check_consent_change,
)
from identity_svc.store.consent_cache import ConsentCache
from service_kit import paging
from service_kit.accounts import is_account_number
from service_kit.clock import Clock
from service_kit.db import one_statement_transaction
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from service_kit.wire import MAX_UNIX_US, MIN_UNIX_US, from_unix_us, to_unix_us

log = logging.getLogger("carbon.identity.consent")

# Two writers recording under one new request id race on its unique key; the loser's retry returns the winner's.
_WRITE_ATTEMPTS = 2


def _record(row: Row[Any]) -> ConsentRecord:
    return ConsentRecord(
        account_number=row.account_number,
        category=DataCategory(row.category),
        action=ConsentAction(row.action),
        effective_at=row.effective_at,
        channel=Channel(row.channel),
        recorded_by=row.recorded_by,
        guardian_account_number=row.guardian_account_number or "",
    )


def next_page_token(effective_at: datetime, record_id: int) -> str:
    """Where the next page of a history starts: effective_at in µs since the epoch and the record id."""
    return paging.encode_token("consents", to_unix_us(effective_at), record_id)


def page_after(token: str) -> tuple[datetime, int] | None:
    """The (effective_at, record id) a page token names; None for the first page."""
    cursor = paging.decode_token(token, "consents", int, int)
    if cursor is None:
        return None
    effective_at_us, record_id = int(cursor[0]), int(cursor[1])
    if not MIN_UNIX_US <= effective_at_us <= MAX_UNIX_US:
        raise InvalidArgument("page_token", "is not a page token of this list", reason="INVALID_PAGE_TOKEN")
    return from_unix_us(effective_at_us), record_id


def timeline_from(row: Row[Any] | None, events: Sequence[ConsentEvent]) -> ConsentTimeline:
    """An account's timeline from its row (None: unknown) and its consent history, oldest first."""
    if row is None:
        return UNKNOWN_TIMELINE
    return ConsentTimeline(known=True, state=AccountState(row.state), events=tuple(events))


class ConsentService:
    def __init__(
        self,
        engine: Engine,
        keys: KeyRing,
        cache: ConsentCache,
        clock: Clock,
        read_record: RecordReader,
        region_code: str = "",
        remote_guardians: RemoteGuardians | None = None,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.cache = cache
        self.clock = clock
        # Opens a sealed real-name record: a guardian's age is checked from their ID number.
        self.read_record = read_record
        # A guardian of another region is judged there, through the gateway (ADR 0209).
        self.region_code = region_code
        self.remote_guardians: RemoteGuardians = remote_guardians or NoGateway()

    def record(
        self,
        action: ConsentAction,
        *,
        request_id: str,
        account_number: str,
        category: int,
        channel: int,
        recorded_by: str,
        effective_at: datetime | None,
        guardian_account_number: str = "",
        requester: Requester = UNIDENTIFIED,
    ) -> ConsentRecord:
        validate_identifier(request_id, "request_id")
        validate_account_number(account_number)
        if guardian_account_number:
            validate_account_number(guardian_account_number, "guardian_account_number")
        chosen_category = validate_category(category)
        validate_channel(channel)
        validate_identifier(recorded_by, "recorded_by")
        now = self.clock()
        in_force_from = validate_effective_at(effective_at, now)
        fingerprint = self.keys.fingerprint(
            "consent",
            account_number,
            str(int(action)),
            str(category),
            str(channel),
            recorded_by,
            effective_at.isoformat() if effective_at else "",
            guardian_account_number,
        )
        values = {
            "request_id": request_id,
            "fingerprint": fingerprint,
            "account_number": account_number,
            "category": int(chosen_category),
            "action": int(action),
            "effective_at": in_force_from,
            "recorded_at": now,
            "channel": channel,
            "recorded_by": recorded_by,
            "guardian_account_number": guardian_account_number or None,
        }
        remote = ask_remote_guardian(self.remote_guardians, self.region_code, guardian_account_number, requester)
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    row = self._record_in(conn, values, requester, remote)
                break
            except IntegrityError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        self.cache.invalidate([account_number])
        log.info(
            "consent recorded",
            extra={"account_number": account_number, "category": chosen_category.name, "action": action.name},
        )
        return _record(row)

    def _record_in(
        self, conn: Connection, values: dict[str, Any], requester: Requester, remote: GuardianAnswer | None
    ) -> Row[Any]:
        """The record stored first under this request id, or a new one on an open account."""
        prior = store.consents.consent_by_request(conn, values["request_id"])
        if prior is not None:
            if prior.fingerprint != values["fingerprint"]:
                raise AlreadyExists(
                    "IDEMPOTENCY_KEY_REUSED",
                    "request_id: was used before with a different request",
                    {"field": "request_id"},
                )
            return prior
        account = store.accounts.account_for_update(conn, values["account_number"])
        if account is None:
            raise unknown_account()
        if account.state != AccountState.OPEN:
            raise FailedPrecondition("ACCOUNT_CLOSED", "the account is closed")
        require_after_opening(values["effective_at"], account.opened_at)
        guardian = values["guardian_account_number"] or ""
        check_consent_change(conn, self.read_record, account, guardian, requester, values["recorded_at"], remote)
        store.consents.insert_consent(conn, **values)
        row = store.consents.consent_by_request(conn, values["request_id"])
        assert row is not None
        return row

    def history(self, account_number: str, page_size: int, page_token: str) -> tuple[list[ConsentRecord], str]:
        size = paging.page_size(page_size)
        after = page_after(page_token)
        with self.engine.connect() as conn:
            if store.accounts.account(conn, account_number) is None:
                raise unknown_account()
            rows = store.consents.consent_page(conn, account_number, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        token = next_page_token(rows[-1].effective_at, rows[-1].id) if more else ""
        return [_record(row) for row in rows], token

    def timelines(self, account_numbers: Sequence[str]) -> dict[str, ConsentTimeline]:
        """Read-through: cache hits, then one database read for all the misses together."""
        hits, misses = self.cache.lookup(list(dict.fromkeys(account_numbers)))
        # The form of a number is checked on misses only: the cache is filled from nothing but misses that passed
        # this check, so a malformed number is never a hit, and a warm batch spares a Luhn sum per account.
        misses = {number: generation for number, generation in misses.items() if is_account_number(number)}
        if misses:
            # Two reads at READ COMMITTED take a snapshot each in a transaction too: none is opened around them.
            with one_statement_transaction(self.engine) as conn:
                rows = store.accounts.accounts_by_numbers(conn, misses)
                histories = store.consents.consent_histories(conn, rows)
            loaded = {number: timeline_from(rows.get(number), histories.get(number, [])) for number in misses}
            self.cache.fill(loaded, misses)
            hits.update(loaded)
        return hits

    def check(self, questions: Sequence[Question]) -> list[ConsentVerdict]:
        return self.check_columns(
            [question.account_number for question in questions],
            [question.category for question in questions],
            [question.at for question in questions],
        )

    def check_columns(
        self,
        account_numbers: Sequence[str],
        categories: Sequence[int],
        moments: Sequence[datetime | None],
        fields: tuple[str, str] = ("questions[{}].category", "questions[{}].at"),
    ) -> list[ConsentVerdict]:
        """check() with the questions given as three columns, so the servicer builds no object per question.
        `fields`: how an error names question i's category and time (formatted with i)."""
        if len(account_numbers) > MAX_QUESTIONS:
            raise InvalidArgument("questions", f"at most {MAX_QUESTIONS} per call", reason="BATCH_TOO_LARGE")
        assert len(account_numbers) == len(categories) == len(moments), "columns of one batch"
        # Categories are validated once per distinct value; a batch rarely has more than two.
        distinct = set(categories)
        chosen = {value: DataCategory(value) for value in distinct if value in DataCategory._value2member_map_}
        if len(chosen) < len(distinct) or None in moments:
            _reject_first_invalid(categories, moments, fields)
        timelines = self.timelines(account_numbers)
        # Every moment is set (checked above).
        at_each = cast(Sequence[datetime], moments)
        return [
            decide_consent(timelines.get(number, UNKNOWN_TIMELINE), chosen[category], at)
            for number, category, at in zip(account_numbers, categories, at_each, strict=True)
        ]


def _reject_first_invalid(
    categories: Sequence[int], moments: Sequence[datetime | None], fields: tuple[str, str]
) -> NoReturn:
    """Raises for the first question, in order, with an unknown category or no time (category before time)."""
    for index, (category, at) in enumerate(zip(categories, moments, strict=True)):
        validate_category(category, fields[0].format(index))
        if at is None:
            raise InvalidArgument(fields[1].format(index), "is required", reason="INVALID_EVENT_TIME")
    raise AssertionError("no question was invalid")
