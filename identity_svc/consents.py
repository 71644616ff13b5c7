"""Consent use cases: grant, revoke, list the history, and answer "may this event score?" in batches, cached."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from identity_svc import store
from identity_svc.consent_cache import ConsentCache, from_micros, to_micros
from identity_svc.crypto import KeyRing
from identity_svc.domain import (
    AccountState,
    Channel,
    ConsentAction,
    ConsentEvent,
    ConsentTimeline,
    ConsentVerdict,
    DataCategory,
    decide_consent,
    validate_category,
    validate_identifier,
)
from identity_svc.service import Clock, unknown_account
from service_kit import paging
from service_kit.accounts import is_account_number
from service_kit.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger("carbon.identity.consent")

MAX_QUESTIONS = 10_000
# A consent may not take effect later than this after it is recorded (clock skew between callers).
MAX_FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ConsentRecord:
    account_number: str
    category: DataCategory
    action: ConsentAction
    effective_at: datetime
    channel: Channel
    recorded_by: str


@dataclass(frozen=True)
class Question:
    account_number: str
    category: int
    at: datetime | None


def _record(row: Row[Any]) -> ConsentRecord:
    return ConsentRecord(
        row.account_number,
        DataCategory(row.category),
        ConsentAction(row.action),
        row.effective_at,
        Channel(row.channel),
        row.recorded_by,
    )


def _token(row: Row[Any]) -> str:
    micros = to_micros(row.effective_at)
    return base64.urlsafe_b64encode(f"{micros}:{row.id}".encode()).decode()


def _after(token: str) -> tuple[datetime, int] | None:
    if not token:
        return None
    try:
        micros, last_id = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        return from_micros(int(micros)), int(last_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("page_token", "is not a token this service issued", reason="INVALID_PAGE_TOKEN") from None


def timeline_from(row: Row[Any] | None, history: Sequence[Any]) -> ConsentTimeline:
    if row is None:
        return ConsentTimeline(known=False)
    events = tuple(
        ConsentEvent(DataCategory(item.category), ConsentAction(item.action), item.effective_at, int(item.id))
        for item in history
    )
    return ConsentTimeline(True, AccountState(row.state), events)


class ConsentService:
    def __init__(self, engine: Engine, keys: KeyRing, cache: ConsentCache, clock: Clock) -> None:
        self.engine = engine
        self.keys = keys
        self.cache = cache
        self.clock = clock

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
    ) -> ConsentRecord:
        validate_identifier(request_id, "request_id")
        if not is_account_number(account_number):
            raise InvalidArgument(
                "account_number", "must be a 16-digit account number", reason="INVALID_ACCOUNT_NUMBER"
            )
        chosen_category = validate_category(category)
        if channel not in Channel._value2member_map_:
            raise InvalidArgument("channel", "must be a known channel", reason="INVALID_CHANNEL")
        validate_identifier(recorded_by, "recorded_by")
        now = self.clock()
        if effective_at is not None and effective_at > now + MAX_FUTURE_SKEW:
            raise InvalidArgument("effective_at", "may not be in the future", reason="INVALID_EFFECTIVE_AT")
        fingerprint = self.keys.fingerprint(
            "consent",
            account_number,
            str(int(action)),
            str(category),
            str(channel),
            recorded_by,
            effective_at.isoformat() if effective_at else "",
        )
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    row = self._record_in(
                        conn, action, request_id, account_number, chosen_category, channel, recorded_by,
                        effective_at or now, now, fingerprint,
                    )  # fmt: skip
                break
            except IntegrityError:
                if attempt == 1:
                    raise
        self.cache.invalidate([account_number])
        log.info(
            "consent recorded",
            extra={"account_number": account_number, "category": chosen_category.name, "action": action.name},
        )
        return _record(row)

    def _record_in(
        self,
        conn: Connection,
        action: ConsentAction,
        request_id: str,
        account_number: str,
        category: DataCategory,
        channel: int,
        recorded_by: str,
        effective_at: datetime,
        now: datetime,
        fingerprint: str,
    ) -> Row[Any]:
        prior = store.consent_by_request(conn, request_id)
        if prior is not None:
            if prior.fingerprint != fingerprint:
                raise InvalidArgument(
                    "request_id", "was used before with a different request", reason="IDEMPOTENCY_KEY_REUSED"
                )
            return prior
        account = store.account_for_update(conn, account_number)
        if account is None:
            raise unknown_account()
        if account.state != AccountState.OPEN:
            raise FailedPrecondition("ACCOUNT_CLOSED", "the account is closed")
        store.insert_consent(
            conn,
            request_id=request_id,
            fingerprint=fingerprint,
            account_number=account_number,
            category=int(category),
            action=int(action),
            effective_at=effective_at,
            recorded_at=now,
            channel=channel,
            recorded_by=recorded_by,
        )
        row = store.consent_by_request(conn, request_id)
        assert row is not None
        return row

    def history(self, account_number: str, page_size: int, page_token: str) -> tuple[list[ConsentRecord], str]:
        size = paging.page_size(page_size)
        after = _after(page_token)
        with self.engine.connect() as conn:
            if store.account(conn, account_number) is None:
                raise unknown_account()
            rows = store.consent_page(conn, account_number, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return [_record(row) for row in rows], _token(rows[-1]) if more else ""

    def timelines(self, account_numbers: Sequence[str]) -> dict[str, ConsentTimeline]:
        """Read-through: cache hits, then one database read for all the misses together."""
        hits, misses = self.cache.lookup(list(dict.fromkeys(account_numbers)))
        # The form of a number is checked on misses only: the cache is filled from nothing but misses that passed
        # this check, so a malformed number is never a hit, and a warm batch spares a Luhn sum per account.
        misses = {number: generation for number, generation in misses.items() if is_account_number(number)}
        if misses:
            with self.engine.connect() as conn:
                rows = store.accounts_by_numbers(conn, misses)
                histories = store.consent_histories(conn, rows)
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
        unknown = ConsentTimeline(known=False)
        # Every moment is set (checked above).
        at_each = cast(Sequence[datetime], moments)
        return [
            decide_consent(timelines.get(number, unknown), chosen[category], at)
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
