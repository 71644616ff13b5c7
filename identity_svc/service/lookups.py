"""A batch of account references looked up in a few queries, one per kind (AccountService.resolve_many)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row

from identity_svc import store
from identity_svc.domain.accounts import Ref, Resolved, public_state


def _resolved(row: Row[Any]) -> Resolved:
    return Resolved(account_number=row.account_number, state=public_state(row.state))


@dataclass
class Lookups:
    """What one batch of references asks for, by kind, and what the cache and the database found."""

    cached: dict[str, Resolved | None]
    binding_keys: list[tuple[str, str]]
    phone_hashes: dict[str, str]
    id_hashes: dict[str, str]
    by_binding: dict[tuple[str, str], str] = field(default_factory=dict)
    by_phone_hash: dict[str, list[Row[Any]]] = field(default_factory=dict)
    by_id_hash: dict[str, str] = field(default_factory=dict)
    rows_by_number: dict[str, Row[Any]] = field(default_factory=dict)

    def read(self, conn: Connection, account_numbers: Sequence[str]) -> None:
        self.by_binding = store.accounts.bindings_by_keys(conn, self.binding_keys)
        self.by_phone_hash = store.accounts.open_accounts_by_phone_hashes(conn, self.phone_hashes.values())
        id_rows = [store.accounts.account_by_id_hash(conn, digest) for digest in set(self.id_hashes.values())]
        self.by_id_hash = {row.id_hash: row.account_number for row in id_rows if row is not None}
        wanted = [*account_numbers, *self.by_binding.values(), *self.by_id_hash.values()]
        self.rows_by_number = store.accounts.accounts_by_numbers(conn, wanted)

    def answer(self, ref: Ref) -> Resolved | None:
        number: str | None = None
        if ref.kind == "account_number":
            if ref.value in self.cached:
                return self.cached[ref.value]
            number = ref.value
        elif ref.kind == "binding":
            number = self.by_binding.get((ref.value, ref.platform_user_id))
        elif ref.kind == "id_number":
            number = self.by_id_hash.get(self.id_hashes[ref.value])
        elif ref.kind == "phone_number":
            matches = self.by_phone_hash.get(self.phone_hashes[ref.value], [])
            # A phone shared by several residents (a family at a community centre) names no single account.
            return _resolved(matches[0]) if len(matches) == 1 else None
        row = self.rows_by_number.get(number) if number else None
        return _resolved(row) if row is not None else None
