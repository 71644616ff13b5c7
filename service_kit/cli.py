"""The `carbon` command: `carbon up` runs the embedded system, `carbon status` reports on a running one; the
operator commands (migrate, jobs, import) are in service_kit/operations.py, expire, settle and remind in
scheduled_runs.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from service_kit import embedded, embedded_trust, health, operations, scheduled_runs
from service_kit.clock import format_offset, parse_offset
from service_kit.topology import (
    DEFAULT_BASE_PORT,
    DEFAULT_REGIONS,
    NATIONAL_SERVICES,
    REGISTRY_FILE,
    Registry,
    plan,
)


def print_table(registry: Registry, data_dir: Path, states: dict[str, str] | None = None) -> None:
    rows = [("process", "region", "address", "state" if states else "")]
    names = {
        region.region_code: f"{region.region_code} {region.name_en} {region.name_zh}" for region in registry.regions
    }
    for spec in registry.processes():
        region = "national" if spec.service in NATIONAL_SERVICES else names[spec.region_code]
        rows.append((spec.service, region, spec.address, (states or {}).get(spec.label, "")))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"data: {data_dir}  (SQLite files, logs/ per process, {REGISTRY_FILE})")
    print(
        f"gateway: {registry.gateway_address}  (gRPC with reflection: "
        f"grpcurl -plaintext {registry.gateway_address} list)"
    )


def rehearsal_offset_variable(args: argparse.Namespace, env: Mapping[str, str], now: datetime) -> str:
    """CARBON_CLOCK_OFFSET for the children from --clock-offset or --rehearse-at (else the variable as given);
    ValueError when it cannot be used: malformed, both flags, or a production environment."""
    if args.clock_offset and args.rehearse_at:
        raise ValueError("give --clock-offset or --rehearse-at, not both")
    if args.rehearse_at:
        start = datetime.fromisoformat(args.rehearse_at)
        if start.tzinfo is None:
            raise ValueError(f"--rehearse-at needs a UTC offset, e.g. 2028-12-03T23:55:00+08:00 (got {start})")
        offset = timedelta(seconds=round((start - now).total_seconds()))
    else:
        offset = parse_offset(args.clock_offset or env.get("CARBON_CLOCK_OFFSET", ""))
    if offset and env.get("CARBON_ENVIRONMENT", "").lower() == "production":
        raise ValueError("a rehearsal clock is refused when CARBON_ENVIRONMENT=production")
    return format_offset(offset) if offset else ""


def _up(args: argparse.Namespace) -> int:
    regions = [code.strip() for code in args.regions.split(",") if code.strip()]
    try:
        offset = rehearsal_offset_variable(args, os.environ, datetime.now(UTC))
    except ValueError as error:
        print(f"carbon up: {error}", file=sys.stderr)
        return 2
    if offset:
        os.environ["CARBON_CLOCK_OFFSET"] = offset
        print(f"rehearsal clock: every process runs {offset} from now ({datetime.now(UTC) + parse_offset(offset)})")
    try:
        registry = plan(regions, host=args.host, base_port=args.base_port)
    except ValueError as error:
        print(f"carbon up: {error}", file=sys.stderr)
        return 2
    return embedded.run(registry, Path(args.data_dir), print_table, mtls=args.mtls)


def _status(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    path = data_dir / REGISTRY_FILE
    if not path.exists():
        print(f"carbon status: no system has run from {data_dir} (no {REGISTRY_FILE}); start one with `carbon up`.")
        return 1
    registry = Registry.load(path)
    specs = registry.processes()
    trust = embedded_trust.load(data_dir)
    operator = trust.settings() if trust is not None else None
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda spec: health.probe(spec.service, spec.address, args.timeout, operator), specs))
    print_table(registry, data_dir, {spec.label: state for spec, state in zip(specs, states, strict=True)})
    serving = sum(state == "SERVING" for state in states)
    print(f"{serving}/{len(specs)} SERVING")
    return 0 if serving == len(specs) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carbon", description="Personal carbon accounts (个人碳账户 / 碳普惠).")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the gateway and regional platforms on localhost (SQLite, no Redis)")
    up.add_argument("--data-dir", default="data", help="folder for SQLite files, logs and the registry (default: data)")
    up.add_argument("--regions", default=",".join(DEFAULT_REGIONS), help="comma-separated GB/T 2260 region codes")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, help="gateway port; regions follow in tens")
    up.add_argument(
        "--mtls",
        action="store_true",
        help="mutual TLS between all processes (a CA and per-process certificates generated into the data folder)",
    )
    up.add_argument(
        "--clock-offset", default="", help="rehearsal clock: shift every process's time, e.g. +730d or -2h30m"
    )
    up.add_argument(
        "--rehearse-at", default="", help="rehearsal clock: start at this instant, e.g. 2028-12-03T23:55:00+08:00"
    )
    up.set_defaults(run=_up)
    status = commands.add_parser("status", help="health of a running embedded system")
    status.add_argument("--data-dir", default="data")
    status.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each process")
    status.set_defaults(run=_status)
    _operator_commands(commands)
    return parser


def _operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser("migrate", help="bring every database to the current schema (safe to rerun)")
    migrate.add_argument("--data-dir", default="data")
    migrate.add_argument("--service", default="", help="only this service's databases")
    migrate.add_argument("--database-url", default="", help="one database by URL (with --service)")
    migrate.set_defaults(run=operations.migrate)
    expire = commands.add_parser("expire", help="run a day's expiry sweep in each region, with progress (rerunnable)")
    expire.add_argument("--data-dir", default="data")
    expire.add_argument("--region", default="", help="comma-separated region codes (default: every region)")
    expire.add_argument(
        "--as-of", default="", help="YYYY-MM-DD, not after today: lots expired by the start of this China day"
    )
    expire.set_defaults(run=scheduled_runs.expire)
    jobs = commands.add_parser("jobs", help="the scheduled jobs' runs and leaders of each region")
    jobs.add_argument("--data-dir", default="data")
    jobs.add_argument("--region", default="", help="comma-separated region codes (default: every region)")
    jobs.add_argument(
        "--job", default="", choices=["", "expiry", "hold_timeouts", "monthly_close", "reminders", "move_lots"]
    )
    jobs.add_argument("--limit", type=int, default=10, help="runs per region (at most 200)")
    jobs.set_defaults(run=operations.jobs)
    settle = commands.add_parser("settle", help="close a month's books in each region, with progress (rerunnable)")
    settle.add_argument("--data-dir", default="data")
    settle.add_argument("--region", default="", help="comma-separated region codes (default: every region)")
    settle.add_argument("--month", default="", help="YYYY-MM before the current month (default: the month just ended)")
    settle.set_defaults(run=scheduled_runs.settle)
    remind = commands.add_parser("remind", help="queue a day's reminders in each region, with progress (rerunnable)")
    remind.add_argument("--data-dir", default="data")
    remind.add_argument("--region", default="", help="comma-separated region codes (default: every region)")
    remind.add_argument("--day", default="", help="YYYY-MM-DD, not after today (China time; default: today)")
    remind.set_defaults(run=scheduled_runs.remind)
    imports = commands.add_parser("import", help="submit partner events from a CSV or JSONL file, signed, in batches")
    imports.add_argument("file")
    imports.add_argument("--partner-id", required=True)
    imports.add_argument("--key-id", required=True, help="the partner's signing key id")
    imports.add_argument(
        "--secret-variable", default="CARBON_SECRET_IMPORT_PARTNER", help="the variable holding the signing secret"
    )
    imports.add_argument("--data-dir", default="data")
    imports.add_argument("--region", default="", help="the region whose ingest receives the events")
    imports.add_argument("--ingest", default="", help="the ingest address instead of the registry's")
    imports.add_argument("--batch-size", type=int, default=operations.IMPORT_BATCH)
    imports.add_argument("--restart", action="store_true", help="ignore the checkpoint of an earlier run")
    imports.set_defaults(run=_import)


def _import(args: argparse.Namespace) -> int:
    secret = os.environ.get(args.secret_variable, "")
    if not secret:
        raise operations.OperationError(f"set {args.secret_variable} to the partner's signing secret")
    return operations.import_events(args, secret)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except operations.OperationError as error:
        print(f"carbon {args.command}: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        print(f"carbon {args.command}: {error.code().name}: {error.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1


if __name__ == "__main__":
    sys.exit(main())
