"""Account use cases of identity_svc: open (per channel), get, resolve, find by person key. Transactions live here."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from identity_svc import store
from identity_svc.consent_cache import ConsentCache
from identity_svc.crypto import KeyRing, Sealed
from identity_svc.domain import (
    AccountState,
    Binding,
    Channel,
    Opening,
    mask_id_number,
    mask_name,
    mask_phone_number,
    validate_id_number,
    validate_phone_number,
)
from service_kit.accounts import is_account_number, new_account_number
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

log = logging.getLogger("carbon.identity")

Clock = Callable[[], datetime]
CHINA_STANDARD_TIME = timedelta(hours=8)
MAX_RESOLVE_BATCH = 10_000
_WRITE_ATTEMPTS = 4


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AccountView:
    """An account as it leaves the service: personal data masked."""

    account_number: str
    region_code: str
    state: AccountState
    masked_name: str
    masked_id_number: str
    masked_phone_number: str
    bindings: Sequence[Binding]
    opened_at: datetime
    closed_at: datetime | None
    opened_via: Channel
    # Pseudonymous and linkable across regions: for the gateway's directory and same-person checks, never shown.
    person_key: str = ""


@dataclass(frozen=True)
class Resolved:
    account_number: str
    state: AccountState


@dataclass(frozen=True)
class Ref:
    """One way of naming an account: kind is account_number, binding, phone_number or id_number."""

    kind: str
    value: str
    platform_user_id: str = ""


def unknown_account() -> NotFound:
    return NotFound("UNKNOWN_ACCOUNT", "no such account in this region")


def public_state(state: int) -> AccountState:
    return AccountState.OPEN if state == AccountState.OPEN else AccountState.CLOSED


class AccountService:
    def __init__(self, engine: Engine, keys: KeyRing, region_code: str, cache: ConsentCache, clock: Clock) -> None:
        self.engine = engine
        self.keys = keys
        self.region_code = region_code
        self.cache = cache
        self.clock = clock

    def today_in_china(self) -> date:
        """Birth dates are calendar days in China Standard Time."""
        return (self.clock().astimezone(UTC) + CHINA_STANDARD_TIME).date()

    # -- views ---------------------------------------------------------------------------------------------------

    def view(self, conn: Connection, row: Row[Any], bindings: Sequence[tuple[str, str]] | None = None) -> AccountView:
        record: dict[str, str] = {}
        if row.record_blob is not None:
            sealed = Sealed(row.record_key_id, bytes(row.record_blob))
            record = json.loads(self.keys.open(sealed, row.account_number.encode()))
        if bindings is None:
            bindings = store.bindings_of(conn, [row.account_number])[row.account_number]
        return AccountView(
            account_number=row.account_number,
            region_code=row.region_code,
            state=public_state(row.state),
            masked_name=mask_name(record.get("name", "")),
            masked_id_number=mask_id_number(record.get("id_number", "")),
            masked_phone_number=mask_phone_number(record.get("phone_number", "")),
            bindings=[Binding(platform, user_id) for platform, user_id in bindings],
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            opened_via=Channel(row.opened_via),
            person_key=row.person_key or "",
        )

    def seal_record(self, account_number: str, name: str, id_number: str, phone_number: str) -> Sealed:
        plaintext = json.dumps({"name": name, "id_number": id_number, "phone_number": phone_number}).encode()
        return self.keys.seal(plaintext, account_number.encode())

    # -- open ----------------------------------------------------------------------------------------------------

    def open_account(self, opening: Opening) -> tuple[AccountView, bool]:
        """Opens an account, or binds the channel to the person's existing one (created=False). Idempotent."""
        id_hash = self.keys.id_hash(opening.id_number)
        fingerprint = self.keys.fingerprint(
            "open",
            str(int(opening.channel)),
            opening.name,
            opening.id_number,
            opening.phone_number,
            opening.binding.platform if opening.binding else "",
            opening.binding.platform_user_id if opening.binding else "",
            opening.community_centre_id,
            opening.staff_id,
        )
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    view, created = self._open_in(conn, opening, id_hash, fingerprint)
                break
            except IntegrityError:
                # A concurrent opening for the same person, binding or request won: the retry sees its result.
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        self.cache.invalidate([view.account_number])
        log.info(
            "account opened" if created else "channel bound to existing account",
            extra={"account_number": view.account_number, "channel": opening.channel.name},
        )
        return view, created

    def _open_in(self, conn: Connection, opening: Opening, id_hash: str, fingerprint: str) -> tuple[AccountView, bool]:
        prior = store.opening(conn, opening.request_id)
        if prior is not None:
            if prior.fingerprint == "erased":
                raise FailedPrecondition("ACCOUNT_CLOSED", "the account this request opened has been closed")
            if prior.fingerprint != fingerprint:
                raise InvalidArgument(
                    "request_id", "was used before with a different request", reason="IDEMPOTENCY_KEY_REUSED"
                )
            row = store.account(conn, prior.account_number)
            assert row is not None
            return self.view(conn, row), bool(prior.created)
        now = self.clock()
        row = store.account_by_id_hash(conn, id_hash)
        created = row is None
        if row is None:
            number = new_account_number(self.region_code)
            sealed = self.seal_record(number, opening.name, opening.id_number, opening.phone_number)
            store.insert_account(
                conn,
                account_number=number,
                region_code=self.region_code,
                state=int(AccountState.OPEN),
                id_hash=id_hash,
                person_key=self.keys.person_key(opening.id_number),
                phone_hash=self.keys.phone_hash(opening.phone_number) if opening.phone_number else None,
                record_key_id=sealed.key_id,
                record_blob=sealed.blob,
                opened_via=int(opening.channel),
                opened_at=now,
            )
        else:
            number = row.account_number
            if row.state != AccountState.OPEN:
                raise FailedPrecondition("ACCOUNT_CLOSING", "the person's account is being closed")
            if row.phone_hash is None and opening.phone_number:
                # First phone number for an account opened without one: bind it.
                sealed = self.seal_record(number, opening.name, opening.id_number, opening.phone_number)
                store.update_account(
                    conn,
                    number,
                    phone_hash=self.keys.phone_hash(opening.phone_number),
                    record_key_id=sealed.key_id,
                    record_blob=sealed.blob,
                )
        if opening.binding is not None:
            bound = store.binding(conn, opening.binding.platform, opening.binding.platform_user_id)
            if bound is None:
                store.insert_binding(
                    conn,
                    platform=opening.binding.platform,
                    platform_user_id=opening.binding.platform_user_id,
                    account_number=number,
                    channel=int(opening.channel),
                    bound_at=now,
                )
            elif bound.account_number != number:
                raise AlreadyExists("BINDING_IN_USE", "this platform user is bound to another account")
        store.insert_opening(
            conn,
            request_id=opening.request_id,
            fingerprint=fingerprint,
            account_number=number,
            created=created,
            channel=int(opening.channel),
            community_centre_id=opening.community_centre_id or None,
            staff_id=opening.staff_id or None,
            opened_at=now,
        )
        if created:
            # Everything the view shows is at hand: spare the round trips of reading it back.
            return AccountView(
                account_number=number,
                region_code=self.region_code,
                state=AccountState.OPEN,
                masked_name=mask_name(opening.name),
                masked_id_number=mask_id_number(opening.id_number),
                masked_phone_number=mask_phone_number(opening.phone_number),
                bindings=[opening.binding] if opening.binding else [],
                opened_at=now,
                closed_at=None,
                opened_via=opening.channel,
                person_key=self.keys.person_key(opening.id_number),
            ), created
        fresh = store.account(conn, number)
        assert fresh is not None
        return self.view(conn, fresh), created

    def reencrypt_records(self, batch_size: int = 500) -> int:
        """Key rotation: re-seals one batch of real-name records under the current key id; returns how many."""
        with self.engine.begin() as conn:
            rows = store.accounts_sealed_with_other_keys(conn, self.keys.current_key_id, batch_size)
            for row in rows:
                associated = row.account_number.encode()
                plaintext = self.keys.open(Sealed(row.record_key_id, bytes(row.record_blob)), associated)
                sealed = self.keys.seal(plaintext, associated)
                store.update_account(conn, row.account_number, record_key_id=sealed.key_id, record_blob=sealed.blob)
        if rows:
            log.info("records re-encrypted", extra={"count": len(rows), "key_id": self.keys.current_key_id})
        return len(rows)

    # -- read ----------------------------------------------------------------------------------------------------

    def get_account(self, account_number: str) -> AccountView:
        if not is_account_number(account_number):
            raise InvalidArgument(
                "account_number", "must be a 16-digit account number", reason="INVALID_ACCOUNT_NUMBER"
            )
        with self.engine.connect() as conn:
            row = store.account(conn, account_number)
            if row is None:
                raise unknown_account()
            return self.view(conn, row)

    def find_by_person_key(self, person_key: str) -> list[AccountView]:
        if len(person_key) != 64 or any(char not in "0123456789abcdef" for char in person_key):
            raise InvalidArgument("person_key", "must be 64 lower-case hex digits", reason="INVALID_PERSON_KEY")
        with self.engine.connect() as conn:
            rows = store.accounts_by_person_key(conn, person_key)
            bindings = store.bindings_of(conn, [row.account_number for row in rows])
            return [self.view(conn, row, bindings[row.account_number]) for row in rows]

    def resolve(self, ref: Ref, field_prefix: str = "") -> Resolved:
        """One reference; malformed values are INVALID_ARGUMENT naming the field, unknown ones NOT_FOUND."""
        if ref.kind == "phone_number":
            validate_phone_number(ref.value, field_prefix + "phone_number")
        elif ref.kind == "id_number":
            validate_id_number(ref.value, self.today_in_china(), field_prefix + "id_number")
        elif ref.kind == "account_number" and not is_account_number(ref.value):
            raise InvalidArgument(
                field_prefix + "account_number", "must be a 16-digit account number", reason="INVALID_ACCOUNT_NUMBER"
            )
        found = self.resolve_many([ref])[0]
        if found is None:
            raise unknown_account()
        return found

    def resolve_many(self, refs: Sequence[Ref]) -> list[Resolved | None]:
        """Many references in a few queries, one per kind. Malformed values simply match nothing."""
        if len(refs) > MAX_RESOLVE_BATCH:
            raise InvalidArgument("refs", f"at most {MAX_RESOLVE_BATCH} per call", reason="BATCH_TOO_LARGE")
        numbers = [ref.value for ref in refs if ref.kind == "account_number"]
        # Account numbers are answered from the consent timeline cache when it holds them (it is invalidated by every
        # opening and closing, docs/adr/0203): ingest resolves each batch's accounts just before checking consents.
        cached = self._cached(numbers)
        numbers = [number for number in numbers if number not in cached]
        binding_keys = [(ref.value, ref.platform_user_id) for ref in refs if ref.kind == "binding"]
        phone_hashes = {ref.value: self.keys.phone_hash(ref.value) for ref in refs if ref.kind == "phone_number"}
        id_hashes = {ref.value: self.keys.id_hash(ref.value) for ref in refs if ref.kind == "id_number"}
        by_binding: dict[tuple[str, str], str] = {}
        by_phone: dict[str, list[Row[Any]]] = {}
        by_id: dict[str, str] = {}
        accounts: dict[str, Row[Any]] = {}
        # No connection is checked out when the cache answered every reference (ingest's warm path).
        if numbers or binding_keys or phone_hashes or id_hashes:
            with self.engine.connect() as conn:
                by_binding = store.bindings_by_keys(conn, binding_keys)
                by_phone = store.open_accounts_by_phone_hashes(conn, phone_hashes.values())
                id_rows = [store.account_by_id_hash(conn, digest) for digest in set(id_hashes.values())]
                by_id = {row.id_hash: row.account_number for row in id_rows if row is not None}
                accounts = store.accounts_by_numbers(conn, [*numbers, *by_binding.values(), *by_id.values()])
        results: list[Resolved | None] = []
        for ref in refs:
            number: str | None = None
            if ref.kind == "account_number":
                if ref.value in cached:
                    results.append(cached[ref.value])
                    continue
                number = ref.value
            elif ref.kind == "binding":
                number = by_binding.get((ref.value, ref.platform_user_id))
            elif ref.kind == "id_number":
                number = by_id.get(id_hashes[ref.value])
            elif ref.kind == "phone_number":
                matches = by_phone.get(phone_hashes[ref.value], [])
                # A phone shared by several residents (a family at a community centre) names no single account.
                if len(matches) == 1:
                    results.append(Resolved(matches[0].account_number, public_state(matches[0].state)))
                    continue
            row = accounts.get(number) if number else None
            results.append(Resolved(row.account_number, public_state(row.state)) if row is not None else None)
        return results

    def _cached(self, numbers: Sequence[str]) -> dict[str, Resolved | None]:
        if not numbers:
            return {}
        # Malformed numbers are simply misses: the cache holds only numbers ConsentService.timelines validated.
        timelines, _ = self.cache.lookup(list(dict.fromkeys(numbers)))
        return {
            number: Resolved(number, public_state(timeline.state)) if timeline.known else None
            for number, timeline in timelines.items()
        }
