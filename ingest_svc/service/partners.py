"""Data partners: registration with a first signing key, look-ups, key rotation with a grace period, and the
partners' decrypted keys cached for verifying batch signatures (docs/adr/0402-partner-secrets-encrypted-at-rest.md)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from ingest_svc.domain.partners import KINDS, PARTNER_ID_PATTERN, Partner, PartnerKey
from ingest_svc.store import partners as stored
from ingest_svc.store.partners import PartnerChange, SealedKey
from ingest_svc.store.secret_box import SecretBox
from service_kit.clock import Clock
from service_kit.errors import AlreadyExists, InvalidArgument, NotFound

# Partners and their decrypted keys are cached per process. A key or partner unknown to the cache is looked up again
# before a batch is refused, so a key rotated by another replica works at once; deactivation lags at most this long.
PARTNER_CACHE_TTL_S = 5.0
FIRST_KEY_ID = "k1"
MAX_PAGE = 500
MAX_REQUEST_ID = 128
MAX_REASON = 500


class Partners:
    def __init__(self, engine: Engine, box: SecretBox, clock: Clock, grace: timedelta = timedelta(hours=24)) -> None:
        self._engine = engine
        self._box = box
        self._clock = clock
        self._grace = grace
        self._cache: dict[str, tuple[float, Partner, list[PartnerKey]]] = {}
        self._cache_lock = threading.Lock()

    def register(self, request_id: str, partner: Partner, known_behaviours: set[str]) -> tuple[Partner, str]:
        """Returns the partner and its first secret; a retry with the same request id returns the same pair."""
        _check_registration(request_id, partner, known_behaviours)
        now = self._clock()
        secret = secrets.token_urlsafe(32)
        partner = replace(partner, active_key_id=FIRST_KEY_ID, active=True)
        sealed = self._seal(secret, partner.partner_id, FIRST_KEY_ID)
        first_key = SealedKey(partner.partner_id, FIRST_KEY_ID, sealed, now)
        with self._engine.begin() as conn:
            registered = stored.insert_partner(conn, partner, request_id, first_key)
            if registered is not None:
                return registered, secret
            if stored.registered_by(conn, partner.partner_id) != request_id:
                raise AlreadyExists("PARTNER_EXISTS", f"partner_id: {partner.partner_id} is registered already")
            existing = stored.partner(conn, partner.partner_id)
            first = next(k for k in stored.keys(conn, partner.partner_id) if k.key_id == FIRST_KEY_ID)
        assert existing is not None
        return existing, self._open(first).decode()

    def get(self, partner_id: str) -> Partner:
        with self._engine.connect() as conn:
            partner = stored.partner(conn, partner_id)
        if partner is None:
            raise NotFound("PARTNER_NOT_FOUND", f"partner_id: {partner_id!r} is not registered")
        return partner

    def page(self, after: str, limit: int) -> list[Partner]:
        with self._engine.connect() as conn:
            return stored.partners_after(conn, after, max(1, min(limit, MAX_PAGE)))

    def for_verification(self, partner_id: str, fresh: bool = False) -> tuple[Partner | None, list[PartnerKey]]:
        """The partner and its decrypted keys, from the cache unless `fresh` or older than PARTNER_CACHE_TTL_S."""
        if not fresh:
            with self._cache_lock:
                cached = self._cache.get(partner_id)
            if cached is not None and time.monotonic() - cached[0] < PARTNER_CACHE_TTL_S:
                return cached[1], cached[2]
        loaded_at = time.monotonic()
        with self._engine.connect() as conn:
            partner = stored.partner(conn, partner_id)
            sealed = stored.keys(conn, partner_id) if partner is not None else []
        keys = [PartnerKey(k.key_id, self._open(k), k.created_at, k.valid_until) for k in sealed]
        if partner is not None:
            with self._cache_lock:
                self._cache[partner_id] = (loaded_at, partner, keys)
        return partner, keys

    def rotate(self, request_id: str, partner_id: str) -> tuple[str, str, datetime]:
        """New active key; the previous one stays valid for the grace period. Idempotent per request id."""
        if not request_id:
            raise InvalidArgument("request_id", "required (idempotency key)")
        now = self._clock()
        with self._engine.begin() as conn:
            done = stored.key_by_request(conn, request_id)
            if done is not None:
                if done.partner_id != partner_id:
                    raise AlreadyExists(
                        "IDEMPOTENCY_KEY_REUSED", "request_id: used for another partner", {"field": "request_id"}
                    )
                return done.key_id, self._open(done).decode(), done.created_at + self._grace
            if stored.partner(conn, partner_id) is None:
                raise NotFound("PARTNER_NOT_FOUND", f"partner_id: {partner_id!r} is not registered")
            key_id = f"k{len(stored.keys(conn, partner_id)) + 1}"
            secret = secrets.token_urlsafe(32)
            sealed = SealedKey(partner_id, key_id, self._seal(secret, partner_id, key_id), now, None, request_id)
            stored.rotate_key(conn, sealed, now + self._grace)
        with self._cache_lock:
            self._cache.pop(partner_id, None)
        return key_id, secret, now + self._grace

    def change_behaviours(
        self, request_id: str, partner_id: str, behaviours: list[str], reason: str, known_behaviours: set[str]
    ) -> tuple[Partner, tuple[str, ...]]:
        """The partner allowed exactly `behaviours` from now on, and what it was allowed before. Idempotent per
        request id: a retry answers as the change did and applies nothing again."""
        wanted = tuple(sorted(set(behaviours)))
        _check_change(request_id, wanted, reason, known_behaviours)
        with self._engine.begin() as conn:
            done = stored.change_by_request(conn, request_id)
            if done is None:
                partner = stored.partner_for_update(conn, partner_id)
                if partner is None:
                    raise NotFound("PARTNER_NOT_FOUND", f"partner_id: {partner_id!r} is not registered")
                change = PartnerChange(request_id, partner_id, tuple(sorted(partner.allowed_behaviours)), wanted)
                if stored.record_change(conn, change, reason, self._clock()):
                    done = change
                else:  # the same request id committed meanwhile: answer as it did
                    done = stored.change_by_request(conn, request_id)
            assert done is not None
            if (done.partner_id, done.behaviours_after) != (partner_id, wanted):
                raise AlreadyExists(
                    "IDEMPOTENCY_KEY_REUSED", "request_id: used for another change", {"field": "request_id"}
                )
            current = stored.partner(conn, partner_id)
        assert current is not None
        with self._cache_lock:
            self._cache.pop(partner_id, None)
        return current, done.behaviours_before

    def _seal(self, secret: str, partner_id: str, key_id: str) -> bytes:
        """The ciphertext is bound to its row: "partner/key_id" is its associated data."""
        return self._box.seal(secret.encode(), f"{partner_id}/{key_id}")

    def _open(self, key: SealedKey) -> bytes:
        return self._box.open(key.secret_ciphertext, f"{key.partner_id}/{key.key_id}")


def _check_registration(request_id: str, partner: Partner, known_behaviours: set[str]) -> None:
    """A registration's fields, each refusal naming the field."""
    if not request_id:
        raise InvalidArgument("request_id", "required (idempotency key)")
    if not PARTNER_ID_PATTERN.match(partner.partner_id):
        raise InvalidArgument("partner.partner_id", "2-64 of a-z 0-9 _ . - starting with a letter or digit")
    if partner.kind not in KINDS:
        raise InvalidArgument("partner.kind", "required")
    if not partner.name.strip():
        raise InvalidArgument("partner.name", "required")
    unknown = sorted(set(partner.allowed_behaviours) - known_behaviours)
    if not partner.allowed_behaviours or unknown:
        raise InvalidArgument("partner.allowed_behaviours", f"at least one known behaviour (unknown: {unknown})")
    bad_regions = [r for r in partner.allowed_regions if len(r) != 6 or not r.isdigit()]
    if not partner.allowed_regions or bad_regions:
        raise InvalidArgument("partner.allowed_regions", f"at least one 6-digit region code (bad: {bad_regions})")
    if partner.rate_limit_per_second < 0:
        raise InvalidArgument("partner.rate_limit_per_second", "must not be negative (0 = unlimited)")


def _check_change(request_id: str, behaviours: tuple[str, ...], reason: str, known_behaviours: set[str]) -> None:
    if not request_id or len(request_id) > MAX_REQUEST_ID:
        raise InvalidArgument("request_id", f"required (idempotency key), at most {MAX_REQUEST_ID} characters")
    unknown = sorted(set(behaviours) - known_behaviours)
    if not behaviours or unknown:
        raise InvalidArgument("allowed_behaviours", f"at least one known behaviour (unknown: {unknown})")
    if len(reason) > MAX_REASON:
        raise InvalidArgument("reason", f"at most {MAX_REASON} characters")
