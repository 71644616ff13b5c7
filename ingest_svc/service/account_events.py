"""One account's recorded events with their scores, page by page: the ingest part of the person's copy of their data
(PIPL art. 45, ADR 0208)."""

from __future__ import annotations

from sqlalchemy import Engine

from ingest_svc.domain.event_rows import EventRow
from ingest_svc.store import events
from service_kit import paging
from service_kit.accounts import is_account_number
from service_kit.errors import InvalidArgument

_KIND = "account_events"


def account_events(
    engine: Engine, account_number: str, page_token: str, requested_size: int
) -> tuple[list[EventRow], str]:
    """A page of the account's events ordered by (partner_id, event_id), and the next page's token ("" after the
    last)."""
    if not is_account_number(account_number):
        raise InvalidArgument("account_number", "must be a 16-digit account number with a valid check digit")
    size = paging.page_size(requested_size)
    cursor = paging.decode_token(page_token, _KIND, str, str)
    after = None if cursor is None else (str(cursor[0]), str(cursor[1]))
    with engine.connect() as conn:
        rows = events.account_events(conn, account_number, after, size + 1)
    if len(rows) <= size:
        return rows, ""
    last = rows[size - 1]
    return rows[:size], paging.encode_token(_KIND, last.partner_id, last.event_id)
