"""GetAccountFigures on both databases: accounts opened and closed in a month and open at its end, by channel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from identity_svc.domain.accounts import Channel
from identity_svc.domain.closing import PointsDisposition
from identity_svc.service.figures import account_figures
from service_kit.errors import InvalidArgument
from tests.identity.conftest import ServicesFactory
from tests.identity.identity_helpers import ZHEJIANG_ID, FakeClock, opening


def counts(engine: Engine, clock: FakeClock, month: int) -> dict[int, tuple[int, int, int]]:
    figures = account_figures(engine, clock, 2026, month)
    return {c.channel: (c.opened, c.open_at_end, c.closed) for c in figures}


def test_a_month_counts_openings_closings_and_open_accounts_by_channel(
    make_services: ServicesFactory, clock: FakeClock
) -> None:
    services = make_services()
    services.accounts.open_account(opening())  # 15 March, through a platform
    centre = opening("open-2", id_number=ZHEJIANG_ID, channel=Channel.COMMUNITY_CENTRE, centre="c-1", staff="s-1")
    counter = services.accounts.open_account(centre)[0].account_number
    clock.now = datetime(2026, 4, 10, 2, 0, tzinfo=UTC)
    services.closing.close("close-1", counter, int(PointsDisposition.NONE), "resident")
    platform, community = int(Channel.INTERNET_PLATFORM), int(Channel.COMMUNITY_CENTRE)

    assert counts(services.accounts.engine, clock, 3) == {platform: (1, 1, 0), community: (1, 1, 0)}
    assert counts(services.accounts.engine, clock, 4) == {platform: (0, 1, 0), community: (0, 0, 1)}
    assert counts(services.accounts.engine, clock, 2) == {}, "nothing existed yet"
    with pytest.raises(InvalidArgument) as caught:
        account_figures(services.accounts.engine, clock, 2026, 5)
    assert caught.value.metadata["field"] == "month"
