"""Cross-region transfers in their table: stored once by id, moved step by step by compare-and-set."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from gateway.domain.transfers import Decision, HeldLot, State
from gateway.store import transfers as store
from gateway.store.tables import transfers
from tests.gateway.store.conftest import NOW, transfer


def test_a_transfer_id_is_stored_once(engine: Engine) -> None:
    with engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW)


def test_a_twin_of_a_stored_transfer_is_not_inserted_and_the_transaction_goes_on(engine: Engine) -> None:
    with engine.begin() as conn:
        assert store.insert_new_transfer(conn, transfer(), lease_until=NOW)
        assert not store.insert_new_transfer(conn, transfer(), lease_until=NOW)
        assert store.advance(conn, "t1", State.CREATED, State.HELD)
    with engine.connect() as conn:
        stored = store.get_transfer(conn, "t1")
    assert stored is not None and stored.state is State.HELD


def test_a_step_moves_only_from_the_expected_state_and_keeps_the_lots(engine: Engine) -> None:
    lots = [HeldLot("lot-1", "2025-01-02", NOW + timedelta(days=300), 400)]
    with engine.begin() as conn:
        store.insert_transfer(conn, transfer(), lease_until=NOW)
        assert store.advance(conn, "t1", State.CREATED, State.HELD, hold_expires_at=NOW, held_lots=lots)
        assert not store.advance(conn, "t1", State.CREATED, State.HELD)
        assert store.decide(conn, "t1", State.HELD, Decision.NONE, Decision.COMMIT)
        assert not store.decide(conn, "t1", State.HELD, Decision.NONE, Decision.ABORT)
    with engine.connect() as conn:
        stored = store.get_transfer(conn, "t1")
    assert stored is not None
    assert (stored.state, stored.decision, stored.held_lots, stored.hold_expires_at) == (
        State.HELD, Decision.COMMIT, lots, NOW,
    )  # fmt: skip


def test_many_transfers_are_inserted_at_once_and_a_stored_twin_is_left_out(engine: Engine) -> None:
    with engine.begin() as conn:
        assert store.insert_new_transfer(conn, transfer("t2"), lease_until=NOW)
    with engine.begin() as conn:
        inserted = store.insert_new_transfers(conn, [transfer("t3"), transfer("t2"), transfer("t1")], NOW, "gw-0")
    assert inserted == {"t1", "t3"}
    with engine.connect() as conn:
        stored = [store.get_transfer(conn, transfer_id) for transfer_id in ("t1", "t2", "t3")]
    assert all(found is not None and found.state is State.CREATED for found in stored)


def test_many_transfers_settle_in_one_statement_only_from_the_expected_state(engine: Engine) -> None:
    with engine.begin() as conn:
        store.insert_new_transfers(conn, [transfer("t1"), transfer("t2"), transfer("t3")], NOW, "gw-0")
        assert store.advance(conn, "t1", State.CREATED, State.HELD)
        assert store.advance(conn, "t2", State.CREATED, State.HELD)
        moved = store.finish_many(conn, ["t1", "t2", "t3"], State.HELD, State.COMMITTED, NOW)
    assert moved == {"t1", "t2"}
    with engine.connect() as conn:
        first, third = store.get_transfer(conn, "t1"), store.get_transfer(conn, "t3")
    assert first is not None and (first.state, first.finished_at, first.failure_reason) == (State.COMMITTED, NOW, "")
    assert third is not None and third.state is State.CREATED


def test_compare_and_sets_run_together_tell_which_rows_moved(engine: Engine) -> None:
    with engine.begin() as conn:
        store.insert_new_transfers(conn, [transfer("t1"), transfer("t2"), transfer("t3")], NOW, "gw-0")
        assert store.advance(conn, "t2", State.CREATED, State.HELD)  # another driver got there first
    writes = [store.advance_cas(f"t{n}", State.CREATED, State.HELD, decision=Decision.COMMIT) for n in (1, 2, 3)]
    with engine.begin() as conn:
        assert store.run_together(conn, writes) == [True, False, True]
    with engine.begin() as conn:
        all_moved = [store.advance_cas(f"t{n}", State.HELD, State.COMMITTED) for n in (1, 2, 3)]
        assert store.run_together(conn, all_moved) == [True, True, True]
    with engine.connect() as conn:
        states = [found.state for n in (1, 2, 3) if (found := store.get_transfer(conn, f"t{n}")) is not None]
    assert states == [State.COMMITTED] * 3


def test_a_batch_of_new_transfers_reads_back_as_recorded_and_leased(engine: Engine) -> None:
    recorded = [replace(transfer(f"t{n}"), carry_lots=[], authorized_by=f"platform:p{n}") for n in (2, 1)]
    with engine.begin() as conn:
        assert store.insert_new_transfers(conn, recorded, NOW, "gw-0") == {"t1", "t2"}
    with engine.connect() as conn:
        stored = [store.get_transfer(conn, t.transfer_id) for t in recorded]
        leases = conn.execute(select(transfers.c.lease_until, transfers.c.lease_owner)).all()
    assert stored == recorded
    assert [tuple(lease) for lease in leases] == [(NOW, "gw-0")] * 2


def test_two_compare_and_sets_of_one_transfer_run_together_move_it_once(engine: Engine) -> None:
    with engine.begin() as conn:
        store.insert_new_transfers(conn, [transfer("t1"), transfer("t2")], NOW, "gw-0")
    writes = [store.advance_cas(transfer_id, State.CREATED, State.HELD) for transfer_id in ("t1", "t1", "t2")]
    with engine.begin() as conn:
        assert store.run_together(conn, writes) == [True, False, True]
