"""The rewards server's lifecycle: the recovery thread it starts stops with the server (Registration.on_stop)."""

from __future__ import annotations

import threading
from pathlib import Path

from rewards_svc.server import pooled_engine, registrations
from service_kit import db
from service_kit.server import start_server
from service_kit.settings import Settings


def recovery_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "rewards-recovery"]


def test_the_recovery_thread_stops_with_the_server(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'rewards.db'}")
    db.migrate("rewards_svc", engine)
    settings = Settings(
        service="rewards_svc", region_code="330000", port=0, extra={"CARBON_LEDGER_ADDRESS": "127.0.0.1:1"}
    )
    before = set(recovery_threads())
    running = start_server(settings, registrations(settings, engine))
    started = [thread for thread in recovery_threads() if thread not in before]
    assert len(started) == 1 and started[0].is_alive()
    running.stop()
    assert not started[0].is_alive()
    engine.dispose()


def test_on_postgresql_the_pool_has_a_connection_for_every_worker(postgres_url: str) -> None:
    settings = Settings(service="rewards_svc", max_workers=24)
    small = db.make_engine(postgres_url, pool_size=10)
    pooled = pooled_engine(settings, small)
    assert pooled is not small and pooled.pool.size() == 24  # type: ignore[attr-defined]
    assert pooled.url == small.url
    sized = db.make_engine(postgres_url, pool_size=24)
    assert pooled_engine(settings, sized) is sized
    for engine in (pooled, small, sized):
        engine.dispose()
