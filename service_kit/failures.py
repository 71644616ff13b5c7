"""Infrastructure failures (the database, Redis) told apart from bugs: what a caller may retry, and what the kit
retries itself.

A connection refused, a pool with no free connection, a server shutting down, a deadlock or a serialization
failure is nobody's bug and no client's fault: the caller gets UNAVAILABLE with RetryInfo and an ErrorInfo reason
(DATABASE_UNAVAILABLE, DATABASE_CONFLICT, CACHE_UNAVAILABLE,
DEPENDENCY_UNAVAILABLE). A value the database refuses as data (a NUL byte, a
string longer than its column) is the client's input and becomes INVALID_ARGUMENT. Everything else stays INTERNAL.

A conflict or a dropped connection is retried by the kit for the methods whose code says so (`idempotent`): the whole
call runs again, as one more unit of work, never a part of one. docs/adr/0003-errors-are-statuses-with-errorinfo.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import grpc
import sqlalchemy.exc

DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
DATABASE_CONFLICT = "DATABASE_CONFLICT"
CACHE_UNAVAILABLE = "CACHE_UNAVAILABLE"
DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
VALUE_REFUSED_BY_STORE = "VALUE_REFUSED_BY_STORE"

# What a caller is told to wait before retrying: a restart of the database or Redis takes seconds, a conflict clears
# as soon as the other transaction ends.
OUTAGE_RETRY_DELAY = timedelta(seconds=1)
CONFLICT_RETRY_DELAY = timedelta(milliseconds=100)
# How many times the kit runs an idempotent call in all before it answers UNAVAILABLE.
IDEMPOTENT_ATTEMPTS = 3

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_DEPENDENCY_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# SQLite's answer when its busy timeout ran out: another writer held the lock the whole time.
_SQLITE_BUSY = ("database is locked", "database is busy")


@dataclass(frozen=True)
class Failure:
    """How an infrastructure failure is answered: retry (UNAVAILABLE) or bad input (INVALID_ARGUMENT)."""

    code: grpc.StatusCode
    reason: str
    message: str
    retry_delay: timedelta | None
    # Safe to run the whole call again at once (for a method marked idempotent).
    transient: bool


def classify(error: BaseException) -> Failure | None:
    """The Failure an exception stands for, or None when it is not an infrastructure failure (a bug: INTERNAL)."""
    if isinstance(error, grpc.RpcError) and error.code() in _DEPENDENCY_DOWN:  # type: ignore[attr-defined]
        # A call to another service that its client did not translate: that service is down or slow.
        return Failure(
            _UNAVAILABLE, DEPENDENCY_UNAVAILABLE, "a dependency did not answer; retry later", OUTAGE_RETRY_DELAY, False
        )
    # The drivers are looked up, not imported: an error of theirs exists only in a process that imported them, and
    # importing them costs a process on SQLite without Redis a quarter of a second of start-up for nothing.
    psycopg = sys.modules.get("psycopg")
    redis = sys.modules.get("redis")
    if redis is not None and isinstance(error, redis.RedisError):
        return Failure(
            _UNAVAILABLE, CACHE_UNAVAILABLE, "the cache is unavailable; retry later", OUTAGE_RETRY_DELAY, True
        )
    if isinstance(error, sqlalchemy.exc.TimeoutError):  # no free connection in the pool in time
        return Failure(
            _UNAVAILABLE, DATABASE_UNAVAILABLE, "the database is busy; retry later", OUTAGE_RETRY_DELAY, False
        )
    orig = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) else error
    conflicts = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) if psycopg else ()
    if isinstance(orig, conflicts) or (orig is not None and _sqlite_busy(orig)):
        return Failure(
            _UNAVAILABLE, DATABASE_CONFLICT, "a concurrent change conflicted; retry", CONFLICT_RETRY_DELAY, True
        )
    if psycopg is not None and isinstance(orig, psycopg.DataError):
        return Failure(
            grpc.StatusCode.INVALID_ARGUMENT,
            VALUE_REFUSED_BY_STORE,
            "a value in the request cannot be stored",
            None,
            False,
        )
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return Failure(
            _UNAVAILABLE,
            DATABASE_UNAVAILABLE,
            "the database connection was lost; retry later",
            OUTAGE_RETRY_DELAY,
            True,
        )
    if (psycopg is not None and isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError)) or isinstance(
        error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
    ):
        return Failure(
            _UNAVAILABLE, DATABASE_UNAVAILABLE, "the database is unavailable; retry later", OUTAGE_RETRY_DELAY, True
        )
    return None


def _sqlite_busy(error: BaseException) -> bool:
    import sqlite3

    return isinstance(error, sqlite3.OperationalError) and str(error).startswith(_SQLITE_BUSY)


Function = TypeVar("Function", bound=Callable[..., Any])


def idempotent(method: Function) -> Function:
    """Marks a servicer method whose whole call may run again after a conflict or a lost connection: a read, or a
    write whose idempotency key makes a second run answer what the first did. The kit's interceptor retries only
    these (unary requests only: a request stream cannot be replayed)."""
    method.carbon_idempotent = True  # type: ignore[attr-defined]
    return method


def is_idempotent(behaviour: Callable[..., Any]) -> bool:
    return bool(getattr(behaviour, "carbon_idempotent", False))
