"""COPY FROM STDIN inside a SQLAlchemy transaction on PostgreSQL: the cheapest way to write many rows.

COPY has no ON CONFLICT: a duplicate key fails the whole statement (and transaction) with a unique violation, so
callers use it where a conflict is rare and redo the transaction another way when one happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:  # imported where it is used: a process on SQLite never imports the PostgreSQL driver
    import psycopg

# COPY's text format: backslash, tab and line breaks in a value must be escaped (NULL is \N; we write none).
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@contextmanager
def copy_into(conn: Connection, statement: str) -> Iterator[psycopg.Copy]:
    """COPY in the connection's transaction (SQLAlchemy has no API for it); driver errors are raised as
    SQLAlchemy's, so a caller's retry on unique violations, deadlocks and serialization failures applies."""
    import psycopg

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            yield copy
    except psycopg.Error as error:
        raise DBAPIError.instance(statement, None, error, psycopg.Error) from error
