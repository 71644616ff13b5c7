"""Data partners and their signing keys as stored; a key's secret only as sealed by secret_box (ADR 0402)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from ingest_svc.domain.partners import Partner
from ingest_svc.store.dialect import insert, utc
from ingest_svc.store.tables import partner_changes, partner_keys, partners


@dataclass(frozen=True)
class SealedKey:
    """A signing key as stored: its secret sealed; `request_id` is the rotation that made it ("" for the first)."""

    partner_id: str
    key_id: str
    secret_ciphertext: bytes = field(repr=False)
    created_at: datetime
    valid_until: datetime | None = None
    request_id: str = ""


def insert_partner(conn: Connection, partner: Partner, request_id: str, first_key: SealedKey) -> Partner | None:
    """The partner as stored (its lists sorted, without repeats), or None when the id exists already (nothing
    written)."""
    row = {
        "partner_id": partner.partner_id,
        "name": partner.name,
        "kind": partner.kind,
        "allowed_behaviours": json.dumps(sorted(set(partner.allowed_behaviours))),
        "allowed_regions": json.dumps(sorted(set(partner.allowed_regions))),
        "rate_limit_per_second": partner.rate_limit_per_second,
        "active_key_id": partner.active_key_id,
        "active": partner.active,
        "request_id": request_id,
        "created_at": first_key.created_at.astimezone(UTC),
    }
    statement = insert(conn, partners).on_conflict_do_nothing().returning(partners.c.partner_id)
    if conn.execute(statement, [row]).first() is None:
        return None
    conn.execute(partner_keys.insert(), [_key_row(first_key)])
    return _partner(row)


def partner(conn: Connection, partner_id: str) -> Partner | None:
    row = conn.execute(select(partners).where(partners.c.partner_id == partner_id)).first()
    return _partner(row._mapping) if row else None


def registered_by(conn: Connection, partner_id: str) -> str | None:
    """The request id that registered the partner (None when it is not registered)."""
    return conn.execute(select(partners.c.request_id).where(partners.c.partner_id == partner_id)).scalar()


def partners_after(conn: Connection, after: str, limit: int) -> list[Partner]:
    query = select(partners).where(partners.c.partner_id > after).order_by(partners.c.partner_id).limit(limit)
    return [_partner(row._mapping) for row in conn.execute(query)]


def keys(conn: Connection, partner_id: str) -> list[SealedKey]:
    return [_key(row) for row in conn.execute(select(partner_keys).where(partner_keys.c.partner_id == partner_id))]


def key_by_request(conn: Connection, request_id: str) -> SealedKey | None:
    row = conn.execute(select(partner_keys).where(partner_keys.c.request_id == request_id)).first()
    return _key(row) if row else None


def rotate_key(conn: Connection, new_key: SealedKey, old_valid_until: datetime) -> None:
    """`new_key` becomes the active key; the one active until now stays valid until `old_valid_until`."""
    partner_id = new_key.partner_id
    conn.execute(
        update(partner_keys)
        .where(partner_keys.c.partner_id == partner_id, partner_keys.c.valid_until.is_(None))
        .values(valid_until=old_valid_until.astimezone(UTC))
    )
    conn.execute(partner_keys.insert(), [_key_row(new_key)])
    conn.execute(update(partners).where(partners.c.partner_id == partner_id).values(active_key_id=new_key.key_id))


@dataclass(frozen=True)
class PartnerChange:
    """A change of a partner's allowed behaviours as recorded (both lists sorted)."""

    request_id: str
    partner_id: str
    behaviours_before: tuple[str, ...]
    behaviours_after: tuple[str, ...]


def change_by_request(conn: Connection, request_id: str) -> PartnerChange | None:
    row = conn.execute(select(partner_changes).where(partner_changes.c.request_id == request_id)).first()
    if row is None:
        return None
    return PartnerChange(
        row.request_id,
        row.partner_id,
        tuple(json.loads(row.behaviours_before)),
        tuple(json.loads(row.behaviours_after)),
    )


def partner_for_update(conn: Connection, partner_id: str) -> Partner | None:
    """The partner, its row locked until the transaction ends (PostgreSQL), so two changes apply one after the other."""
    query = select(partners).where(partners.c.partner_id == partner_id).with_for_update()
    row = conn.execute(query).first()
    return _partner(row._mapping) if row else None


def record_change(conn: Connection, change: PartnerChange, reason: str, at: datetime) -> bool:
    """Writes the change and applies it to the partner; False (nothing written) when its request id is taken."""
    row = {
        "request_id": change.request_id,
        "partner_id": change.partner_id,
        "behaviours_before": json.dumps(list(change.behaviours_before)),
        "behaviours_after": json.dumps(list(change.behaviours_after)),
        "reason": reason,
        "changed_at": at.astimezone(UTC),
    }
    statement = insert(conn, partner_changes).on_conflict_do_nothing().returning(partner_changes.c.request_id)
    if conn.execute(statement, [row]).first() is None:
        return False
    conn.execute(
        update(partners)
        .where(partners.c.partner_id == change.partner_id)
        .values(allowed_behaviours=json.dumps(list(change.behaviours_after)))
    )
    return True


def _partner(row: Mapping[Any, Any]) -> Partner:
    return Partner(
        partner_id=row["partner_id"],
        name=row["name"],
        kind=row["kind"],
        allowed_behaviours=tuple(json.loads(row["allowed_behaviours"])),
        allowed_regions=tuple(json.loads(row["allowed_regions"])),
        rate_limit_per_second=row["rate_limit_per_second"],
        active_key_id=row["active_key_id"],
        active=bool(row["active"]),
    )


def _key_row(key: SealedKey) -> dict[str, Any]:
    return {
        "partner_id": key.partner_id,
        "key_id": key.key_id,
        "secret_ciphertext": key.secret_ciphertext,
        "created_at": key.created_at.astimezone(UTC),
        "valid_until": key.valid_until.astimezone(UTC) if key.valid_until else None,
        "request_id": key.request_id or None,
    }


def _key(row: Any) -> SealedKey:
    return SealedKey(
        partner_id=row.partner_id,
        key_id=row.key_id,
        secret_ciphertext=row.secret_ciphertext,
        created_at=utc(row.created_at),
        valid_until=utc(row.valid_until) if row.valid_until is not None else None,
        request_id=row.request_id or "",
    )
