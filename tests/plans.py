"""Plans of statements as PostgreSQL runs them prepared (psycopg prepares a statement from its 5th execution on), so
a test can check that an index is used under custom and generic plans alike."""

from __future__ import annotations

import re

from sqlalchemy import Connection, TextClause, text


def parameter_names(statement: TextClause) -> list[str]:
    """The statement's :names in order of first appearance (a cast's `::` is not one)."""
    return list(dict.fromkeys(re.findall(r"(?<![:\w]):(\w+)", statement.text)))


def prepared_plan(conn: Connection, name: str, statement: TextClause, types: str, values: str) -> str:
    """EXPLAIN EXECUTE of the statement prepared as `name`: its parameters become $1, $2 ... in the order of
    `parameter_names`, and `types` and `values` (SQL literals, EXECUTE takes no bound parameters) list them in it."""
    sql = statement.text
    for number, parameter in enumerate(parameter_names(statement), start=1):
        sql = sql.replace(f":{parameter}", f"${number}")
    conn.execute(text(f"PREPARE {name}{types} AS {sql}"))
    plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE {name}{values}"))
    conn.execute(text(f"DEALLOCATE {name}"))
    return plan
