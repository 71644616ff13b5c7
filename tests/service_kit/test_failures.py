"""Infrastructure failures as PostgreSQL and Redis really raise them (through SQLAlchemy and redis-py), classified:
a deadlock is a conflict to retry, a refused connection an outage, a NUL byte the client's bad value."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
import redis
from sqlalchemy import Engine, text

from service_kit import redis_client
from service_kit.db import make_engine
from service_kit.failures import (
    CACHE_UNAVAILABLE,
    DATABASE_CONFLICT,
    DATABASE_UNAVAILABLE,
    VALUE_REFUSED_BY_STORE,
    classify,
)
from tests.ports import free_port


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    made = make_engine(postgres_url)
    with made.begin() as connection:
        connection.execute(text("CREATE TABLE pair (id int PRIMARY KEY, v int NOT NULL)"))
        connection.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
    yield made
    made.dispose()


def _reason(error: BaseException) -> str:
    failure = classify(error)
    assert failure is not None, repr(error)
    return failure.reason


@pytest.mark.postgres
def test_a_real_deadlock_is_a_conflict_to_retry(engine: Engine) -> None:
    both_hold_one = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def update(first: int, second: int) -> None:
        try:
            with engine.begin() as connection:
                connection.execute(text("UPDATE pair SET v = v + 1 WHERE id = :id"), {"id": first})
                both_hold_one.wait()
                connection.execute(text("UPDATE pair SET v = v + 1 WHERE id = :id"), {"id": second})
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=update, args=order) for order in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(errors) == 1, errors
    assert _reason(errors[0]) == DATABASE_CONFLICT
    failure = classify(errors[0])
    assert failure is not None and failure.transient


@pytest.mark.postgres
def test_a_nul_byte_is_the_clients_bad_value(engine: Engine) -> None:
    with pytest.raises(Exception) as raised, engine.connect() as connection:
        connection.execute(text("SELECT :value"), {"value": "a\x00b"})
    failure = classify(raised.value)
    assert failure is not None and failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.reason == VALUE_REFUSED_BY_STORE


def test_a_database_nobody_listens_for_is_unavailable() -> None:
    nowhere = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(Exception) as raised, nowhere.connect():
        pass
    nowhere.dispose()
    assert _reason(raised.value) == DATABASE_UNAVAILABLE


def test_a_redis_nobody_listens_for_is_unavailable() -> None:
    client = redis_client.connect(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(redis.RedisError) as raised:
        client.ping()
    assert _reason(raised.value) == CACHE_UNAVAILABLE
