"""Account use cases: open (per channel; on an existing person only under the name on record), get, resolve, find by
person key, re-encrypt after a key rotation."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from identity_svc import store
from identity_svc.domain.accounts import (
    AGE_OF_CONSENT,
    AccountState,
    AccountView,
    Binding,
    Channel,
    Opening,
    Ref,
    Resolved,
    public_state,
    unknown_account,
    validate_account_number,
    validate_person_key,
    validate_platform,
)
from identity_svc.domain.bindings import BindingEvent, BindingEventKind
from identity_svc.domain.guardians import GuardianAnswer, control_passes_at, require_guardian_for_age
from identity_svc.domain.real_name import (
    NameMismatch,
    is_under,
    mask_id_number,
    mask_name,
    mask_phone_number,
    normalize_name,
    validate_id_number,
    validate_phone_number,
)
from identity_svc.domain.requesters import UNIDENTIFIED, Requester
from identity_svc.keys import KeyRing, Sealed
from identity_svc.service.guardians import (
    NoGateway,
    RemoteGuardians,
    ask_remote_guardian,
    check_guardian,
    guardian_standing,
    require_recorded_guardian,
)
from identity_svc.service.lookups import Lookups
from identity_svc.store.consent_cache import ConsentCache
from service_kit.accounts import new_account_number
from service_kit.clock import Clock, china_day
from service_kit.db import one_statement_transaction
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument

log = logging.getLogger("carbon.identity")

MAX_RESOLVE_BATCH = 10_000
# BatchGetAccounts: a gateway batch of cross-region transfers names at most two accounts per transfer.
MAX_GET_BATCH = 1_000
# Concurrent openings for one person, binding or request race on unique keys; the loser retries and sees the winner.
_WRITE_ATTEMPTS = 4


class AccountService:
    def __init__(
        self,
        engine: Engine,
        keys: KeyRing,
        region_code: str,
        cache: ConsentCache,
        clock: Clock,
        remote_guardians: RemoteGuardians | None = None,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.region_code = region_code
        self.cache = cache
        self.clock = clock
        # Judges guardians of other regions (ADR 0209).
        self.remote_guardians: RemoteGuardians = remote_guardians or NoGateway()

    def today_in_china(self) -> date:
        """Birth dates are calendar days in China Standard Time."""
        return china_day(self.clock())

    # -- views ---------------------------------------------------------------------------------------------------

    def record(self, row: Row[Any]) -> dict[str, str]:
        """The account's real-name record decrypted (name, id_number, phone_number); empty once erased."""
        if row.record_blob is None:
            return {}
        sealed = Sealed(row.record_key_id, bytes(row.record_blob))
        record: dict[str, str] = json.loads(self.keys.open(sealed, row.account_number.encode()))
        return record

    def view(self, conn: Connection, row: Row[Any], bindings: Sequence[Binding] | None = None) -> AccountView:
        record = self.record(row)
        if bindings is None:
            bindings = store.accounts.bindings_of(conn, [row.account_number])[row.account_number]
        return AccountView(
            account_number=row.account_number,
            region_code=row.region_code,
            state=public_state(row.state),
            masked_name=mask_name(record.get("name", "")),
            masked_id_number=mask_id_number(record.get("id_number", "")),
            masked_phone_number=mask_phone_number(record.get("phone_number", "")),
            bindings=list(bindings),
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            opened_via=Channel(row.opened_via),
            person_key=row.person_key or "",
            minor=self.minor(record.get("id_number", "")),
            guardian_account_number=row.guardian_account_number or "",
        )

    def minor(self, id_number: str) -> bool:
        """Under 14 today by the record's ID number; an erased record (closed account) is no one's."""
        return bool(id_number) and is_under(id_number, AGE_OF_CONSENT, self.today_in_china())

    def seal_record(self, account_number: str, name: str, id_number: str, phone_number: str) -> Sealed:
        plaintext = json.dumps({"name": name, "id_number": id_number, "phone_number": phone_number}).encode()
        return self.keys.seal(plaintext, account_number.encode())

    # -- open ----------------------------------------------------------------------------------------------------

    def open_account(self, opening: Opening, requester: Requester = UNIDENTIFIED) -> tuple[AccountView, bool]:
        """Opens an account, or binds the channel to the person's existing one (created=False) when the name matches
        the one on record. Idempotent."""
        require_guardian_for_age(opening.id_number, opening.guardian_account_number, self.today_in_china())
        remote = ask_remote_guardian(
            self.remote_guardians, self.region_code, opening.guardian_account_number, requester
        )
        id_hash = self.keys.id_hash(opening.id_number)
        fingerprint = self._opening_fingerprint(opening)
        # Most openings are of people not seen before: the first attempt writes without reading (no guardian to
        # check), and a unique key that refuses it sends the request down the careful path, which reads first.
        first_attempt = 1 if opening.guardian_account_number else 0
        for attempt in range(first_attempt, _WRITE_ATTEMPTS + 1):
            try:
                if attempt == 0:
                    view, created = self._open_fresh(opening, requester, id_hash, fingerprint)
                else:
                    with self.engine.begin() as conn:
                        view, created = self._open_in(conn, opening, requester, id_hash, fingerprint, remote)
                break
            except IntegrityError:
                # The person, the binding or the request id is known already (the write rolled back), or a
                # concurrent opening for them won: the retry reads and sees its result.
                if attempt == _WRITE_ATTEMPTS:
                    raise
            except NameMismatch as refused:
                # The opening's transaction rolled back, so nothing was bound; the attempt is recorded on its own.
                with self.engine.begin() as conn:
                    kind = BindingEventKind.REFUSED_NAME_MISMATCH
                    store.bindings.insert_events(conn, [self._event(kind, refused.account_number, opening, requester)])
                log.warning("opening refused: the name does not match", extra={"channel": opening.channel.name})
                raise
        self.cache.invalidate([view.account_number])
        log.info(
            "account opened" if created else "channel bound to existing account",
            extra={"account_number": view.account_number, "channel": opening.channel.name},
        )
        return view, created

    def guardian_standing(self, account_number: str, platform: str) -> GuardianAnswer:
        """Whether an account here may be a guardian for a child of another region (ADR 0209): only the answer."""
        validate_account_number(account_number)
        if platform:
            validate_platform(platform, "platform")
        return guardian_standing(self.engine, self.record, account_number, platform, self.clock())

    def _opening_fingerprint(self, opening: Opening) -> str:
        return self.keys.fingerprint(
            "open",
            str(int(opening.channel)),
            opening.name,
            opening.id_number,
            opening.phone_number,
            opening.binding.platform if opening.binding else "",
            opening.binding.platform_user_id if opening.binding else "",
            opening.community_centre_id,
            opening.staff_id,
            opening.guardian_account_number,
        )

    def _open_fresh(
        self, opening: Opening, requester: Requester, id_hash: str, fingerprint: str
    ) -> tuple[AccountView, bool]:
        """Inserts only, for a person, binding and request id never seen before: the unique keys on the ID number's
        hash, the platform user and the request id refuse it otherwise (ADR 0212). It writes what `_open_in` writes
        for a new account; on PostgreSQL as one statement, which is its own transaction (one round trip)."""
        now = self.clock()
        number = new_account_number(self.region_code)
        account = self._new_account_values(number, opening, id_hash, now)
        binding = self._binding_values(opening.binding, number, opening.channel, now) if opening.binding else None
        event = self._event(BindingEventKind.OPENED, number, opening, requester)
        record = self._opening_values(opening, fingerprint, number, True, now)
        with one_statement_transaction(self.engine) as conn:
            store.accounts.insert_opened(conn, account, binding, store.bindings.event_values(event), record)
        return self._new_account_view(number, opening, now), True

    def _open_in(
        self,
        conn: Connection,
        opening: Opening,
        requester: Requester,
        id_hash: str,
        fingerprint: str,
        remote: GuardianAnswer | None,
    ) -> tuple[AccountView, bool]:
        """One transaction: replay a retried request, else create or reuse the person's account, bind the channel,
        and record the opening and what it bound."""
        prior = store.accounts.opening(conn, opening.request_id)
        if prior is not None:
            return self._replayed(conn, prior, fingerprint)
        now = self.clock()
        existing = store.accounts.account_by_id_hash(conn, id_hash)
        if existing is None:
            self._check_guardian(conn, opening, requester, now, remote)
            number = self._create_account(conn, opening, id_hash, now)
            changed = True
        else:
            number = existing.account_number
            self._require_name_on_record(conn, existing, opening.name)
            if opening.guardian_account_number:
                require_recorded_guardian(existing, opening.guardian_account_number)
                self._check_guardian(conn, opening, requester, now, remote)
            changed = self._reuse_account(conn, existing, opening)
        if opening.binding is not None:
            changed = self._bind(conn, opening.binding, number, opening.channel, now) or changed
        if changed:
            kind = BindingEventKind.OPENED if existing is None else BindingEventKind.BOUND
            store.bindings.insert_events(conn, [self._event(kind, number, opening, requester)])
        self._insert_opening(conn, opening, fingerprint, number, existing is None, now)
        if existing is None:
            # Everything the view shows is at hand: spare the round trips of reading it back.
            return self._new_account_view(number, opening, now), True
        fresh = store.accounts.account(conn, number)
        assert fresh is not None
        return self.view(conn, fresh), False

    @staticmethod
    def _insert_opening(
        conn: Connection, opening: Opening, fingerprint: str, number: str, created: bool, now: datetime
    ) -> None:
        store.accounts.insert_opening(
            conn, **AccountService._opening_values(opening, fingerprint, number, created, now)
        )

    @staticmethod
    def _opening_values(
        opening: Opening, fingerprint: str, number: str, created: bool, now: datetime
    ) -> dict[str, Any]:
        return {
            "request_id": opening.request_id,
            "fingerprint": fingerprint,
            "account_number": number,
            "created": created,
            "channel": int(opening.channel),
            "community_centre_id": opening.community_centre_id or None,
            "staff_id": opening.staff_id or None,
            "opened_at": now,
        }

    def _replayed(self, conn: Connection, prior: Row[Any], fingerprint: str) -> tuple[AccountView, bool]:
        """The first answer to a request id, or why it cannot be given again."""
        if prior.fingerprint == store.accounts.ERASED_FINGERPRINT:
            raise FailedPrecondition("ACCOUNT_CLOSED", "the account this request opened has been closed")
        if prior.fingerprint != fingerprint:
            raise AlreadyExists(
                "IDEMPOTENCY_KEY_REUSED",
                "request_id: was used before with a different request",
                {"field": "request_id"},
            )
        row = store.accounts.account(conn, prior.account_number)
        assert row is not None
        return self.view(conn, row), bool(prior.created)

    def _check_guardian(
        self, conn: Connection, opening: Opening, requester: Requester, now: datetime, remote: GuardianAnswer | None
    ) -> None:
        if opening.guardian_account_number:
            check_guardian(conn, self.record, opening.guardian_account_number, requester, now, remote)

    def _create_account(self, conn: Connection, opening: Opening, id_hash: str, now: datetime) -> str:
        number = new_account_number(self.region_code)
        store.accounts.insert_account(conn, **self._new_account_values(number, opening, id_hash, now))
        return number

    def _new_account_values(self, number: str, opening: Opening, id_hash: str, now: datetime) -> dict[str, Any]:
        sealed = self.seal_record(number, opening.name, opening.id_number, opening.phone_number)
        return {
            "account_number": number,
            "region_code": self.region_code,
            "state": int(AccountState.OPEN),
            "id_hash": id_hash,
            "person_key": self.keys.person_key(opening.id_number),
            "phone_hash": self.keys.phone_hash(opening.phone_number) if opening.phone_number else None,
            "record_key_id": sealed.key_id,
            "record_blob": sealed.blob,
            "name_hash": self.name_hash(number, opening.name),
            "name_hash_key": self.keys.hash_key_id,
            "opened_via": int(opening.channel),
            "opened_at": now,
            "guardian_account_number": opening.guardian_account_number or None,
            "control_passes_at": control_passes_at(opening.id_number) if opening.guardian_account_number else None,
        }

    def name_hash(self, account_number: str, name: str) -> str:
        """Names are compared normalised (NFC, no surrounding whitespace), as the proto says."""
        return self.keys.name_hash(account_number, normalize_name(name))

    def name_hash_on_record(self, conn: Connection, row: Row[Any]) -> str:
        """The account's name hash under the current HMAC key. A NULL hash (an account opened before names were
        hashed) or another key's is recomputed from the sealed record and stored, so no row is ever unusable."""
        if row.name_hash is not None and row.name_hash_key == self.keys.hash_key_id:
            return str(row.name_hash)
        digest = self.name_hash(row.account_number, self.record(row).get("name", ""))
        store.accounts.update_account(conn, row.account_number, name_hash=digest, name_hash_key=self.keys.hash_key_id)
        return digest

    def _require_name_on_record(self, conn: Connection, row: Row[Any], name: str) -> None:
        """Checked before anything else about the account, so a wrong name learns nothing more (not even whether it
        is being closed)."""
        given = self.name_hash(row.account_number, name)
        if not hmac.compare_digest(given, self.name_hash_on_record(conn, row)):
            raise NameMismatch(row.account_number)

    def _reuse_account(self, conn: Connection, row: Row[Any], opening: Opening) -> bool:
        """Gives the person's existing account the first phone number it hears of if it was opened without one;
        True when it did."""
        number: str = row.account_number
        if row.state != AccountState.OPEN:
            raise FailedPrecondition("ACCOUNT_CLOSING", "the person's account is being closed")
        if row.phone_hash is not None or not opening.phone_number:
            return False
        sealed = self.seal_record(number, opening.name, opening.id_number, opening.phone_number)
        store.accounts.update_account(
            conn,
            number,
            phone_hash=self.keys.phone_hash(opening.phone_number),
            record_key_id=sealed.key_id,
            record_blob=sealed.blob,
        )
        return True

    @staticmethod
    def _bind(conn: Connection, binding: Binding, number: str, channel: Channel, now: datetime) -> bool:
        """Binds the platform user to the account; True when the binding is new."""
        bound = store.accounts.binding(conn, binding.platform, binding.platform_user_id)
        if bound is None:
            AccountService._insert_binding(conn, binding, number, channel, now)
            return True
        if bound.account_number != number:
            raise AlreadyExists("BINDING_IN_USE", "this platform user is bound to another account")
        return False

    @staticmethod
    def _insert_binding(conn: Connection, binding: Binding, number: str, channel: Channel, now: datetime) -> None:
        store.accounts.insert_binding(conn, **AccountService._binding_values(binding, number, channel, now))

    @staticmethod
    def _binding_values(binding: Binding, number: str, channel: Channel, now: datetime) -> dict[str, Any]:
        return {
            "platform": binding.platform,
            "platform_user_id": binding.platform_user_id,
            "account_number": number,
            "channel": int(channel),
            "bound_at": now,
        }

    def _event(self, kind: BindingEventKind, number: str, opening: Opening, requester: Requester) -> BindingEvent:
        return BindingEvent(
            account_number=number,
            kind=kind,
            channel=opening.channel,
            platform=opening.binding.platform if opening.binding else "",
            platform_user_id=opening.binding.platform_user_id if opening.binding else "",
            community_centre_id=opening.community_centre_id,
            request_id=opening.request_id,
            requester=requester,
            staff_id=opening.staff_id,
            occurred_at=self.clock(),
        )

    def _new_account_view(self, number: str, opening: Opening, now: datetime) -> AccountView:
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
            minor=self.minor(opening.id_number),
            guardian_account_number=opening.guardian_account_number,
        )

    def reencrypt_records(self, batch_size: int = 500) -> int:
        """Key rotation: re-seals one batch of real-name records under the current key id; returns how many."""
        with self.engine.begin() as conn:
            rows = store.accounts.accounts_sealed_with_other_keys(conn, self.keys.current_key_id, batch_size)
            for row in rows:
                associated = row.account_number.encode()
                plaintext = self.keys.open(Sealed(row.record_key_id, bytes(row.record_blob)), associated)
                sealed = self.keys.seal(plaintext, associated)
                store.accounts.update_account(
                    conn, row.account_number, record_key_id=sealed.key_id, record_blob=sealed.blob
                )
        if rows:
            log.info("records re-encrypted", extra={"count": len(rows), "key_id": self.keys.current_key_id})
        return len(rows)

    # -- read ----------------------------------------------------------------------------------------------------

    def get_account(self, account_number: str, with_bindings: bool = True) -> AccountView:
        """The account; without its channel bindings (one read fewer) when the caller does not need them."""
        validate_account_number(account_number)
        [view] = self._views([account_number], with_bindings)
        if view is None:
            raise unknown_account()
        return view

    def get_accounts(self, account_numbers: Sequence[str], with_bindings: bool = True) -> list[AccountView | None]:
        """Many accounts, each as get_account reads it, in one read of the accounts (and one of their bindings when
        wanted); None for a number this region has no account for. A malformed number is refused naming its place."""
        if not 0 < len(account_numbers) <= MAX_GET_BATCH:
            raise InvalidArgument(
                "account_numbers", f"1 to {MAX_GET_BATCH} account numbers per call", reason="BATCH_TOO_LARGE"
            )
        for index, number in enumerate(account_numbers):
            validate_account_number(number, f"account_numbers[{index}]")
        return self._views(account_numbers, with_bindings)

    def _views(self, account_numbers: Sequence[str], with_bindings: bool) -> list[AccountView | None]:
        """Each number's account (None where there is none): one read of the accounts, one of their bindings when
        wanted. One statement per read, no transaction around them: the gateway asks this per cross-region transfer."""
        with one_statement_transaction(self.engine) as conn:
            rows = store.accounts.accounts_by_numbers(conn, account_numbers)
            bindings = store.accounts.bindings_of(conn, rows) if with_bindings and rows else {}
            views = {number: self.view(conn, row, bindings.get(number, ())) for number, row in rows.items()}
        return [views.get(number) for number in account_numbers]

    def find_by_person_key(self, person_key: str) -> list[AccountView]:
        validate_person_key(person_key)
        with self.engine.connect() as conn:
            rows = store.accounts.accounts_by_person_key(conn, person_key)
            bindings = store.accounts.bindings_of(conn, [row.account_number for row in rows])
            return [self.view(conn, row, bindings[row.account_number]) for row in rows]

    def resolve(self, ref: Ref, field_prefix: str = "") -> Resolved:
        """One reference; malformed values are INVALID_ARGUMENT naming the field, unknown ones NOT_FOUND."""
        if ref.kind == "phone_number":
            validate_phone_number(ref.value, field_prefix + "phone_number")
        elif ref.kind == "id_number":
            validate_id_number(ref.value, self.today_in_china(), field_prefix + "id_number")
        elif ref.kind == "account_number":
            validate_account_number(ref.value, field_prefix + "account_number")
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
        found = Lookups(
            cached=self._cached(numbers),
            binding_keys=[(ref.value, ref.platform_user_id) for ref in refs if ref.kind == "binding"],
            phone_hashes={ref.value: self.keys.phone_hash(ref.value) for ref in refs if ref.kind == "phone_number"},
            id_hashes={ref.value: self.keys.id_hash(ref.value) for ref in refs if ref.kind == "id_number"},
        )
        uncached = [number for number in numbers if number not in found.cached]
        # No connection is checked out when the cache answered every reference (ingest's warm path).
        if uncached or found.binding_keys or found.phone_hashes or found.id_hashes:
            with self.engine.connect() as conn:
                found.read(conn, uncached)
        return [found.answer(ref) for ref in refs]

    def _cached(self, numbers: Sequence[str]) -> dict[str, Resolved | None]:
        if not numbers:
            return {}
        # Malformed numbers are simply misses: the cache holds only numbers ConsentService.timelines validated.
        timelines, _ = self.cache.lookup(list(dict.fromkeys(numbers)))
        return {
            number: Resolved(number, public_state(timeline.state)) if timeline.known else None
            for number, timeline in timelines.items()
        }
