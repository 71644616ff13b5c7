"""PgBouncer and the autoscalers against the code they serve.

Transaction pooling hands a server connection to another client after every transaction, so the services must keep
no session state across transactions, prepared statements must survive the hand-over, and whatever does hold a
session (migrations' advisory lock) must go through a session-mode entry. The autoscalers must own the replica count
of every service and leave room for node drains. See docs/adr/0501.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import capabilities
from psycopg._preparing import PrepareManager

from service_kit.topology import REGIONAL_SERVICES
from tests.deploy.rendering import K8S, NATIONAL, OBSERVABILITY, ROOT, rendered, targets

Doc = dict[str, Any]
PGBOUNCER = K8S / "pgbouncer"
PACKAGES = ("service_kit", "identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "gateway", "ops_api")
# The one place that may hold session state: migrations, reached through the `<db>_migrate` session-mode entries.
MIGRATION_MODULE = ROOT / "service_kit" / "db.py"


def pgbouncer_settings() -> dict[str, str]:
    text = (PGBOUNCER / "pgbouncer.ini").read_text(encoding="utf-8")
    parser = configparser.ConfigParser(delimiters=("=",), comment_prefixes=(";", "%"), interpolation=None)
    parser.read_string(text)
    return dict(parser["pgbouncer"])


def pgbouncer_version() -> tuple[int, ...]:
    kustomization = yaml.safe_load((PGBOUNCER / "kustomization.yaml").read_text(encoding="utf-8"))
    [image] = [image for image in kustomization["images"] if image["name"] == "pgbouncer"]
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", image["newTag"])
    assert match, image["newTag"]
    return tuple(int(part) for part in match.groups())


def test_pgbouncer_pools_transactions_and_keeps_prepared_statements_across_them() -> None:
    settings = pgbouncer_settings()
    assert settings["pool_mode"] == "transaction"
    # PgBouncer tracks protocol-level prepared statements from 1.21 and DEALLOCATE ALL from 1.22 (which psycopg sends
    # after a ROLLBACK that follows a prepare).
    assert pgbouncer_version() >= (1, 22, 0)
    assert int(settings["max_prepared_statements"]) >= PrepareManager.prepared_max
    # psycopg closes one statement with the protocol's Close message only with libpq 17+; with an older libpq it
    # sends `DEALLOCATE name`, which PgBouncer does not translate. The image installs the same psycopg[binary].
    assert psycopg.pq.version() >= 170000 and capabilities.has_send_close_prepared()
    # What makes prepared statements matter here: the ledger prepares its hold statements on purpose.
    assert "prepare=True" in (ROOT / "ledger_svc" / "store" / "pg_holds.py").read_text(encoding="utf-8")


def _databases_ini(docs: list[Doc]) -> dict[str, dict[str, str]]:
    [secret] = [d for d in docs if d["kind"] == "ExternalSecret" and d["metadata"]["name"] == "pgbouncer-secrets"]
    lines = secret["spec"]["target"]["template"]["data"]["databases.ini"].splitlines()
    assert lines[0] == "[databases]"
    entries = {}
    for line in lines[1:]:
        name, _, options = re.sub(r"\{\{[^}]*\}\}", "<value>", line).partition(" = ")
        entries[name] = dict(option.split("=", 1) for option in options.split())
    return entries


@pytest.mark.parametrize("target", [t for t in targets() if t != OBSERVABILITY], ids=lambda t: t.name)
def test_services_pool_per_transaction_and_migrations_hold_a_session_on_the_same_database(target: Path) -> None:
    docs = rendered(target)
    entries = _databases_ini(docs)
    urls = [
        d["spec"]["target"]["template"]["data"]
        for d in docs
        if d["kind"] == "ExternalSecret" and "database-url" in d["spec"]["target"].get("template", {}).get("data", {})
    ]
    assert len(urls) == (2 if target == NATIONAL else len(REGIONAL_SERVICES))
    for templates in urls:
        service = re.fullmatch(r"postgresql://.+@pgbouncer:6432/(\w+)", templates["database-url"])
        migration = re.fullmatch(r"postgresql://.+@pgbouncer:6432/(\w+)", templates["migration-database-url"])
        assert service and migration, templates
        pooled, session = entries[service.group(1)], entries[migration.group(1)]
        assert pooled.get("pool_mode", "transaction") == "transaction", service.group(1)
        assert session["pool_mode"] == "session", migration.group(1)
        assert pooled["dbname"] == session["dbname"] and pooled["host"] == session["host"]
    assert len(entries) == 2 * len(urls), "an entry no service uses"


# Statements that leave state in the session (and so on whichever client gets the server connection next), or that
# need the same server connection in a later transaction.
SESSION_STATE = {
    "LISTEN/NOTIFY": re.compile(r"""["'](?:LISTEN|UNLISTEN|NOTIFY)\s""", re.IGNORECASE),
    "session advisory lock": re.compile(r"pg_advisory_lock|pg_try_advisory_lock(?!_)"),
    "SET outside a transaction": re.compile(r"""["']\s*SET\s+(?!LOCAL\b)(?:SESSION\s+)?\w+\s*(?:=|TO\b)""", re.I),
    "set_config for the session": re.compile(r"set_config\([^)]*,\s*false\s*\)", re.IGNORECASE),
    "temporary table": re.compile(r"CREATE\s+(?:GLOBAL\s+|LOCAL\s+)?TEMP(?:ORARY)?\s+TABLE", re.IGNORECASE),
    "cursor WITH HOLD": re.compile(r"CURSOR\s+WITH\s+HOLD", re.IGNORECASE),
    "SQL PREPARE": re.compile(r"""["']\s*PREPARE\s+\w+""", re.IGNORECASE),
}


def session_state_in(source: str) -> list[str]:
    return [name for name, pattern in SESSION_STATE.items() if pattern.search(source)]


def test_no_service_keeps_session_state_behind_the_transaction_pooler() -> None:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts or path == MIGRATION_MODULE:
                continue
            found += [
                f"{path.relative_to(ROOT)}: {kind}" for kind in session_state_in(path.read_text(encoding="utf-8"))
            ]
    assert not found, "\n".join(found)
    # Why migrations get session-mode entries: their lock is a session's (SET LOCAL and xact locks are fine).
    assert session_state_in(MIGRATION_MODULE.read_text(encoding="utf-8")) == ["session advisory lock"]


@pytest.mark.parametrize(
    ("source", "kinds"),
    [
        ("conn.execute(text(\"SET LOCAL lock_timeout = '200ms'\"))", []),
        ("conn.execute(text(\"SET lock_timeout = '200ms'\"))", ["SET outside a transaction"]),
        ('conn.execute(text("SET SESSION statement_timeout TO 5"))', ["SET outside a transaction"]),
        ('"UPDATE lots SET remaining_points = 0"', []),
        ('text("SELECT pg_advisory_xact_lock(:k)")', []),
        ('text("SELECT pg_advisory_lock(:k)")', ["session advisory lock"]),
        ('cursor.execute("LISTEN transfers")', ["LISTEN/NOTIFY"]),
        ("\"SELECT set_config('app.user', :u, false)\"", ["set_config for the session"]),
        ('"CREATE TEMP TABLE staged (id int)"', ["temporary table"]),
        ('"DECLARE c CURSOR WITH HOLD FOR SELECT 1"', ["cursor WITH HOLD"]),
        ("cursor.execute(sql, params, prepare=True)", []),
        ('"WITH hold_update AS (UPDATE holds SET state = 2)"', []),
    ],
)
def test_the_session_state_scan_tells_session_statements_from_transaction_ones(source: str, kinds: list[str]) -> None:
    assert session_state_in(source) == kinds


def test_every_service_is_scaled_by_one_cpu_autoscaler_that_owns_its_count() -> None:
    scaled = 0
    for target in targets():
        docs = rendered(target)
        autoscalers = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
        budgets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodDisruptionBudget"}
        for deployment in (d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] != "pgbouncer"):
            name = deployment["metadata"]["name"]
            [autoscaler] = [a for a in autoscalers if a["spec"]["scaleTargetRef"]["name"] == name]
            spec = autoscaler["spec"]
            assert spec["scaleTargetRef"]["kind"] == "Deployment" and "replicas" not in deployment["spec"], name
            assert 2 <= spec["minReplicas"] < spec["maxReplicas"], name
            assert budgets[name]["spec"]["minAvailable"] < spec["minReplicas"], f"{name}: a drain would block"
            [metric] = spec["metrics"]
            assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu", name
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            target_value = metric["resource"]["target"]
            if target_value["type"] == "AverageValue":
                # One Python process uses at most one core: a target at or above the limit would never be reached.
                assert _millicores(target_value["averageValue"]) < _millicores(container["resources"]["limits"]["cpu"])
            scaled += 1
    assert scaled >= 8
    [ingest] = [
        d
        for d in rendered(K8S / "overlays" / "330000")
        if d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == "ingest"
    ]
    assert ingest["spec"]["minReplicas"] == 3, "the 330000 overlay sizes its ingest"


def _millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)
