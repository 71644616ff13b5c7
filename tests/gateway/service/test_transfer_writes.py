"""The state changes of transfers (ADR 0619, 0624): a write alone is one statement with no transaction around it on
PostgreSQL, and stays a compare-and-set; writes that arrive together still commit in one transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from gateway.domain.transfers import State, Timing, Transfer, TransferRequest, new_transfer
from gateway.service.sagas import LostRace
from gateway.service.transfer_writes import TransferWrites
from gateway.store import transfers as store
from service_kit.db import make_engine, migrate

NOW = datetime(2026, 3, 1, 8, tzinfo=UTC)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url, pool_size=2)
    migrate("gateway", engine)
    yield engine
    engine.dispose()


def in_transaction(engine: Engine) -> list[bool]:
    """Whether each statement from now on runs inside a transaction (psycopg sends BEGIN before it), in order."""
    seen: list[bool] = []

    def before(conn: Any, cursor: Any, *args: Any) -> None:
        seen.append(not cursor.connection.autocommit)

    event.listen(engine, "before_cursor_execute", before)
    return seen


def recorded(writes: TransferWrites, transfer_id: str) -> Transfer:
    request = TransferRequest(transfer_id, "3300000000000001", "1100000000000001", 100)
    transfer = new_transfer(request, "platform", NOW, Timing())
    assert writes.record(transfer)
    return transfer


def test_a_write_alone_is_one_statement_without_a_transaction_and_is_durable(engine: Engine) -> None:
    writes = TransferWrites(engine, lambda: NOW, timedelta(seconds=7), "gateway-0")
    statements = in_transaction(engine)
    transfer = recorded(writes, "t-alone")
    writes.advance(transfer, State.HELD)
    assert statements == [False, False]
    with engine.connect() as conn:
        stored = store.get_transfer(conn, "t-alone")
    assert stored is not None and stored.state is State.HELD


def test_a_write_alone_is_still_a_compare_and_set(engine: Engine) -> None:
    writes = TransferWrites(engine, lambda: NOW, timedelta(seconds=7), "gateway-0")
    transfer = recorded(writes, "t-raced")
    writes.advance(transfer, State.HELD)
    with pytest.raises(LostRace):
        writes.advance(transfer, State.HELD)  # as read before the first moved it


def test_writes_that_arrive_together_commit_in_one_transaction(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = TransferWrites(engine, lambda: NOW, timedelta(seconds=7), "gateway-0", slots=1)
    first, second, third = (recorded(writes, key) for key in ("t-first", "t-second", "t-third"))
    statements = in_transaction(engine)
    release = threading.Event()
    original = store.run

    def first_waits(conn: Any, write: store.CompareAndSet) -> bool:
        if write.parameters["cas_id"] == "t-first":
            release.wait(10)  # holds the one slot while the other two writes gather behind it
        return original(conn, write)

    monkeypatch.setattr(store, "run", first_waits)
    threads = [threading.Thread(target=writes.advance, args=(t, State.HELD)) for t in (first, second, third)]
    threads[0].start()
    wait_until(lambda: writes._groups._open.get("xr_transfers") is None)  # the first group is closed and running
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(getattr(writes._groups._open.get("xr_transfers"), "items", [])) == 2)
    release.set()
    for thread in threads:
        thread.join(10)
    # The first write alone needs none; the two gathered behind it run in one transaction (their rows locked in id
    # order, then one UPDATE of both).
    assert statements == [False, True, True]
    with engine.connect() as conn:
        states = [store.get_transfer(conn, key) for key in ("t-first", "t-second", "t-third")]
    assert [t.state if t else None for t in states] == [State.HELD] * 3


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition not met in 10 s"
        time.sleep(0.01)
