"""Schema migrations for one service, run as its own step (the Kubernetes migration Job, or by hand).

    python migrate.py ledger_svc            # bring the schema to head (service_kit.db.migrate), then exit
    python migrate.py --wait ledger_svc     # wait until the schema is at head (a Deployment's init container)

Settings come from the same CARBON_* variables the service reads (CARBON_DATABASE_URL above all), so the Job and the
Deployment cannot disagree about the database. service_kit has no `carbon migrate` command; this file is the deploy
folder's own thin wrapper around service_kit.db and changes nothing there.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from service_kit import db
from service_kit.settings import Settings, SettingsError

SERVICES = ("identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "incentives_svc", "gateway", "ops_api")


def at_head(service_package: str, engine: Engine) -> bool:
    """True when the database holds every head revision of the service's migrations."""
    config = db.alembic_config(service_package, engine)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": config.attributes["version_table"]})
        current = set(context.get_current_heads())
    return current == heads


def wait_for_head(service_package: str, engine: Engine, timeout_s: float, interval_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if at_head(service_package, engine):
                return True
        except OperationalError as error:  # the database is not reachable yet
            print(f"{service_package}: database not ready: {type(error.orig).__name__}", file=sys.stderr)
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--wait", action="store_true", help="only wait until the schema is at head; change nothing")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(args.service)
    except SettingsError as error:
        print(f"{args.service}: {error}", file=sys.stderr)
        return 2
    engine = db.make_engine(settings.effective_database_url(), pool_size=1)
    try:
        if args.wait:
            if not wait_for_head(args.service, engine, args.timeout):
                print(f"{args.service}: schema not at head after {args.timeout:.0f} s", file=sys.stderr)
                return 1
            print(f"{args.service}: schema at head", flush=True)
            return 0
        db.migrate(args.service, engine)
        print(f"{args.service}: migrated to head", flush=True)
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
