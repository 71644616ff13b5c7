"""Leases and retry times of the sagas' tables: one driver at a time, due again when the lease or delay runs out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from gateway.domain.transfers import FINISHED
from gateway.store import leases, tables
from gateway.store import transfers as store
from tests.gateway.store.conftest import NOW, transfer

TRANSFERS = tables.transfers
FINISHED_STATES = [state.value for state in FINISHED]


def test_a_lease_excludes_a_second_driver_until_it_runs_out(engine: Engine) -> None:
    with engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW + timedelta(seconds=5))
        assert not leases.claim(conn, TRANSFERS, "t1", NOW, NOW + timedelta(seconds=5))
        assert leases.due_unfinished(conn, TRANSFERS, FINISHED_STATES, NOW, 10) == []
        assert leases.claim(conn, TRANSFERS, "t1", NOW + timedelta(seconds=6), NOW + timedelta(seconds=11))
        leases.postpone(conn, TRANSFERS, "t1", NOW + timedelta(seconds=20))
        assert leases.due_unfinished(conn, TRANSFERS, FINISHED_STATES, NOW + timedelta(seconds=19), 10) == []
        assert leases.due_unfinished(conn, TRANSFERS, FINISHED_STATES, NOW + timedelta(seconds=20), 10) == ["t1"]
