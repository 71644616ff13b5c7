"""Following accepted events: pages of them in acceptance order, for services that keep something up to date from
them incrementally (incentives' habit profiles) instead of asking for whole histories.

A transaction that accepted events may commit after a later one did, so a reader already past the later one's
position would never see them. Only events accepted at least `settle_s` ago are listed: a batch's transaction that
takes longer than that could still be skipped, which the margin (default 30 s, far above a batch's commit time)
makes a rare, bounded loss for a follower that only builds advice, never money.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from ingest_svc.store import accepted_events as stored
from ingest_svc.store.accepted_events import AcceptedEvent, Position
from service_kit import paging
from service_kit.clock import Clock

TOKEN_KIND = "accepted-events"
DEFAULT_PAGE_SIZE = 500
DEFAULT_SETTLE_S = 30.0


class Following:
    def __init__(self, engine: Engine, clock: Clock, settle_s: float = DEFAULT_SETTLE_S) -> None:
        self._engine = engine
        self._clock = clock
        self._settle = timedelta(seconds=settle_s)

    def page(self, page_token: str, requested_size: int) -> tuple[list[AcceptedEvent], str]:
        """The events after the token's position and the token of the position after them."""
        size = paging.page_size(requested_size, default=DEFAULT_PAGE_SIZE)
        after = _position(page_token)
        with self._engine.connect() as conn:
            found = stored.accepted_after(conn, after, self._clock() - self._settle, size)
        if not found:
            return found, page_token
        last = found[-1]
        return found, paging.encode_token(TOKEN_KIND, _micros(last.accepted_at), last.partner_id, last.event_id)


def _position(page_token: str) -> Position | None:
    cursor = paging.decode_token(page_token, TOKEN_KIND, int, str, str)
    if cursor is None:
        return None
    micros, partner_id, event_id = cursor
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
    return moment, str(partner_id), str(event_id)


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
