"""Leases and retry times of the sagas' tables: one driver at a time, due again when the lease or delay runs out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from gateway.domain.transfers import FINISHED, State
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


def test_taking_back_ends_only_the_named_owners_leases_on_unfinished_rows(engine: Engine) -> None:
    unfinished = [state.value for state in State if state not in FINISHED]
    with engine.begin() as conn:
        store.insert_transfer(conn, transfer("mine"), lease_until=NOW + timedelta(seconds=5), lease_owner="gw-a")
        store.insert_transfer(conn, transfer("theirs"), lease_until=NOW + timedelta(seconds=5), lease_owner="gw-b")
        store.insert_transfer(conn, transfer("nameless"), lease_until=NOW + timedelta(seconds=5))

        assert leases.take_back(conn, TRANSFERS, "gw-a", unfinished) == 1

        assert leases.due_unfinished(conn, TRANSFERS, FINISHED_STATES, NOW, 10) == ["mine"]
        assert leases.claim(conn, TRANSFERS, "mine", NOW, NOW + timedelta(seconds=5), "gw-a")
        assert not leases.claim(conn, TRANSFERS, "theirs", NOW, NOW + timedelta(seconds=5), "gw-a")


def test_every_step_write_names_the_lease_holder(engine: Engine) -> None:
    unfinished = [state.value for state in State if state not in FINISHED]
    with engine.begin() as conn:
        store.insert_new_transfer(conn, transfer(), NOW + timedelta(seconds=5), "gw-b")
        assert store.advance(
            conn, "t1", State.CREATED, State.HELD, lease_until=NOW + timedelta(seconds=5), lease_owner="gw-a"
        )

        assert leases.take_back(conn, TRANSFERS, "gw-b", unfinished) == 0
        assert leases.take_back(conn, TRANSFERS, "gw-a", unfinished) == 1
