"""Two simultaneous openings for one person on real PostgreSQL give one account (the keyed hash is unique)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from identity_svc.domain.accounts import Channel, Opening
from identity_svc.server import build_services
from identity_svc.store.consent_cache import InProcessConsentCache
from identity_svc.store.tables import accounts, channel_bindings
from service_kit.db import make_engine, migrate
from service_kit.settings import Settings
from tests.identity.identity_helpers import FakeClock, MemoryLedger, make_keys, opening, with_check_digit

ROUNDS = 8


@pytest.mark.postgres
def test_simultaneous_openings_for_one_person_give_one_account(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    migrate("identity_svc", engine)
    services = build_services(
        Settings(service="identity_svc"),
        engine,
        keys=make_keys(),
        cache=InProcessConsentCache(),
        ledger=MemoryLedger(),
        clock=FakeClock(),
    )
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for round_ in range(ROUNDS):
                id_number = with_check_digit(f"330106199001{round_ + 10:02d}123")
                start = threading.Barrier(2)
                requests = [
                    opening(f"a{round_}", id_number=id_number, user=f"alipay-{round_}"),
                    opening(f"z{round_}", id_number=id_number, channel=Channel.GOVERNMENT_APP,
                            platform="zheliban", user=f"zlb-{round_}"),
                ]  # fmt: skip

                def open_after_barrier(
                    index: int, start: threading.Barrier = start, requests: list[Opening] = requests
                ) -> tuple[str, bool]:
                    start.wait()
                    view, created = services.accounts.open_account(requests[index])
                    return view.account_number, created

                results = list(pool.map(open_after_barrier, [0, 1]))
                assert results[0][0] == results[1][0]
                assert sorted(created for _, created in results) == [False, True]
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == ROUNDS
            assert conn.execute(select(func.count()).select_from(channel_bindings)).scalar_one() == 2 * ROUNDS
    finally:
        engine.dispose()
