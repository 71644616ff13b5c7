"""`python -m <service>` for every service: settings, logs, telemetry, database, migrations, then serve."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from service_kit import clock, db, logs, telemetry
from service_kit.server import PortInUse, Registration, serve
from service_kit.settings import Settings, SettingsError

log = logging.getLogger("carbon.runner")

BuildRegistrations = Callable[[Settings, Engine], Sequence[Registration]]
# Connections a service's own threads hold beside the gRPC workers': the ledger's sealer and its scheduler (whose
# expiry sweep holds up to three: the candidates' read and two batches in flight), the rewards and gateway recovery
# loops, ingest's resume pass.
BACKGROUND_THREADS = 4


def pool_size_for(settings: Settings) -> int:
    """A connection for every worker thread and background thread, so none ever waits for the pool."""
    return settings.max_workers + BACKGROUND_THREADS


def start_clock(settings: Settings) -> None:
    """Applies the rehearsal offset (if any) before anything reads the clock, and says so in the log."""
    clock.set_rehearsal_offset(settings.clock_offset)
    if settings.clock_offset:
        log.warning(
            "rehearsal clock: this process's time is shifted",
            extra={"offset": clock.format_offset(settings.clock_offset), "now": clock.system_clock().isoformat()},
        )


def run_service(service_package: str, build: BuildRegistrations) -> int:
    try:
        settings = Settings.from_env(service_package)
        logs.configure(settings)
        telemetry.configure(settings)
    except SettingsError as error:
        print(f"{service_package}: {error}", file=sys.stderr)
        return 2
    start_clock(settings)
    engine = db.make_engine(settings.effective_database_url(), pool_size=pool_size_for(settings))
    if settings.migrate_on_start:
        db.migrate(service_package, engine)
    try:
        serve(settings, build(settings, engine), on_stop=engine.dispose)
    except PortInUse as error:
        # One line in the log format: the stream stays JSON (a second, plain copy would break it).
        log.error("cannot start", extra={"error": str(error)})
        return 3
    return 0
