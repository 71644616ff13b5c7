"""GetAccountFigures: the region's accounts for a month (opened, closed, open at its end) by channel, for the
gateway's national figures. A closing counts in the month it finished (closed_at), not when it was asked for."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from identity_svc.store import figures as store
from service_kit.clock import Clock
from service_kit.months import check_month, month_bounds


@dataclass(frozen=True)
class ChannelFigures:
    channel: int
    opened: int
    open_at_end: int
    closed: int


def account_figures(engine: Engine, clock: Clock, year: int, month: int) -> list[ChannelFigures]:
    """Per channel with accounts, in channel order."""
    check_month(year, month, clock())
    start, end = month_bounds(year, month)
    with engine.connect() as conn:
        counts = store.channel_counts(conn, start, end)
    return [ChannelFigures(channel, *counts[channel]) for channel in sorted(counts)]
