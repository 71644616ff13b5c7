"""Whether a service's database is at the head of its migrations, answered without importing alembic.

Every service migrates on start (`service_kit.db.migrate`), and nearly every start after the first finds its schema
at head already: alembic then changes nothing, but importing it (with mako and the dialects' DDL modules) was a good
part of a process's start-up CPU. Here the head is read from the revision scripts' text instead of by importing them.
Anything unusual in a script (a merge revision, a computed identifier) makes the answer "unknown", and the caller asks
alembic as before; tests/service_kit/test_revisions.py checks the answer against alembic's for every service.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, column, inspect, select, table

# `revision: str = "ledger_0001"`, `down_revision: str | None = None`: one string literal (or None) each.
_REVISION = re.compile(r"""^revision\b[^=\n]*=\s*(['"])(?P<id>[^'"\n]+)\1\s*$""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision\b[^=\n]*=\s*(?:None|(['"])(?P<id>[^'"\n]+)\1)\s*$""", re.MULTILINE)
_ANY_DOWN_REVISION = re.compile(r"^down_revision\b", re.MULTILINE)


def version_table(service_package: str) -> str:
    return f"alembic_version_{service_package}"


@cache
def head(service_package: str) -> str | None:
    """The one head revision of the service's scripts, or None when the text alone does not tell it for certain."""
    package = importlib.import_module(service_package)
    versions = Path(package.__path__[0]) / "migrations" / "versions"
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        if script.name == "__init__.py":
            continue
        text = script.read_text(encoding="utf-8")
        found, down = _REVISION.findall(text), list(_DOWN_REVISION.finditer(text))
        if len(found) != 1 or len(down) != 1 or len(_ANY_DOWN_REVISION.findall(text)) != 1:
            return None
        revisions.add(found[0][1])
        if down[0]["id"]:
            parents.add(down[0]["id"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def at_head(service_package: str, connection: Connection) -> bool:
    """True only when the database's version table holds exactly the scripts' head; False when unsure."""
    revision = head(service_package)
    name = version_table(service_package)
    if revision is None or not inspect(connection).has_table(name):
        return False
    rows: list[str] = list(connection.execute(select(column("version_num")).select_from(table(name))).scalars())
    return rows == [revision]
