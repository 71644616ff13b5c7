"""The Citus path checked on the real statements: which tables docs/scale-plan.md distributes, by which column, and
whether a captured statement names that column where Citus routes by it (sqlglot parses the SQL).

A statement "names its distribution key" for a distributed table it touches when: it INSERTs into the table with the
column among the inserted ones; or, for any other use of the table, a WHERE or JOIN ... ON compares the column (of
that table, or unqualified) by equality, IN or = ANY. Anything else fans out to every shard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from sqlalchemy import Engine, event
from sqlglot import expressions as exp

SCALE_PLAN = Path(__file__).resolve().parent.parent / "docs" / "scale-plan.md"
_SECTION = re.compile(r"^### (\w+) \(per region\)$")
_ROW = re.compile(r"^\| (?P<tables>[^|]+) \| distributed \| `(?P<column>\w+)`")
_NAMED = re.compile(r"%\((\w+)\)s")


def distributed_tables(service: str) -> dict[str, str]:
    """Table -> distribution column, from the scale plan's section for `service` (ledger, ingest, identity, rewards)."""
    tables: dict[str, str] = {}
    inside = False
    for line in SCALE_PLAN.read_text(encoding="utf-8").splitlines():
        section = _SECTION.match(line)
        if section or line.startswith("## "):
            inside = bool(section) and section.group(1) == service  # type: ignore[union-attr]
            continue
        row = _ROW.match(line) if inside else None
        if row:
            for table in re.findall(r"`(\w+)`", row.group("tables")):
                tables[table] = row.group("column")
    if not tables:
        raise AssertionError(f"docs/scale-plan.md names no distributed table for {service}")
    return tables


@contextmanager
def captured_statements(engine: Engine | type[Engine]) -> Iterator[list[str]]:
    """Every statement the engine (or, given the Engine class, every engine) sends while inside, as sent."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@dataclass(frozen=True)
class Unkeyed:
    table: str
    column: str
    statement: str


def _parse(statement: str) -> exp.Expr | None:
    text = _NAMED.sub(r":\1", statement).replace("%s", "?")
    try:
        tree: exp.Expr = sqlglot.parse_one(text, read="postgres")
    except sqlglot.errors.ParseError as error:
        raise AssertionError(f"sqlglot cannot parse a captured statement ({error}):\n{statement}") from None
    return tree


def _compares(node: exp.Expr, column: str, names: set[str]) -> bool:
    """Some equality, IN or = ANY under `node` has the column (of one of `names`, or unqualified) on a side, alone or
    in a row value (`(platform, platform_user_id) IN ((...))` names both columns)."""
    for predicate in node.find_all(exp.EQ, exp.In):
        for side in predicate.iter_expressions():
            columns = side.expressions if isinstance(side, exp.Tuple) else [side]
            for named in columns:
                if isinstance(named, exp.Column) and named.name == column and named.table in names | {""}:
                    return True
    return False


def _filters(tree: exp.Expr, table: exp.Table, column: str) -> bool:
    names = {table.name, table.alias_or_name}
    insert = table.find_ancestor(exp.Insert)
    if insert is not None and isinstance(insert.this, exp.Schema) and insert.this.this is table:
        return column in {identifier.name for identifier in insert.this.expressions}
    clauses = [*tree.find_all(exp.Where), *(join.args["on"] for join in tree.find_all(exp.Join) if join.args.get("on"))]
    return any(_compares(clause, column, names) for clause in clauses)


def unkeyed(statements: list[str], tables: dict[str, str]) -> list[Unkeyed]:
    """The (table, statement) pairs where a statement touches a distributed table without naming its column."""
    found: list[Unkeyed] = []
    for statement in statements:
        if not any(re.search(rf"\b{name}\b", statement) for name in tables):
            continue
        tree = _parse(statement)
        if tree is None:
            continue
        for table in tree.find_all(exp.Table):
            column = tables.get(table.name)
            if column is not None and not _filters(tree, table, column):
                found.append(Unkeyed(table.name, column, " ".join(statement.split())))
    return found


def touched(statements: list[str], tables: dict[str, str]) -> set[str]:
    """The distributed tables the statements touch (so a test can show its paths reach them at all)."""
    return {name for name in tables for statement in statements if re.search(rf"\b{name}\b", statement)}


def filters_by(statement: str, table: str, column: str) -> bool:
    """The statement compares `column` of `table` by equality where it uses the table (any of its uses)."""
    tree = _parse(statement)
    if tree is None:
        return False
    return any(_filters(tree, used, column) for used in tree.find_all(exp.Table) if used.name == table)
