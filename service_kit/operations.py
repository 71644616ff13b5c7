"""Operator commands of `carbon`: migrate, jobs, import (expire, settle and remind are job runs: scheduled_runs.py).
Each prints progress as it goes and a summary at the end, and is safe to interrupt (Ctrl-C) and run again: migrations
are idempotent, and an import skips the batches a checkpoint file says were answered
(events are idempotent by partner and event id anyway, so a resent batch is answered DUPLICATE).

The commands talk to a running system over gRPC (addresses from the registry file `carbon up` writes, or given), or
to databases by URL (migrate); the kit imports no service package, so they go through the contracts only. They call
as the ops API (the operator's tools, ADR 0011): with the identity `carbon up` prepared in the data folder, else the
one CARBON_SERVICE_IDENTITY and CARBON_SERVICE_KEY_FILE (and TLS files) name.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from service_kit import db, embedded_trust
from service_kit.channels import open_channel
from service_kit.partner_signing import sign_request
from service_kit.settings import Settings
from service_kit.topology import DEFAULT_REGIONS, REGISTRY_FILE, RegionEntry, Registry, plan

MIGRATED_SERVICES = ("identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "incentives_svc")
RPC_TIMEOUT_S = 120
IMPORT_BATCH = 500
MAX_IMPORT_BATCH = 5000


class OperationError(Exception):
    """What the operator must fix; printed without a traceback."""


def progress(out: TextIO, label: str, done: int, total: int | None = None, extra: str = "") -> None:
    """One line redrawn in place: a bar when the total is known, else a running count."""
    if total:
        filled = min(30, 30 * done // total)
        line = f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,} {extra}"
    else:
        line = f"\r{label} {done:,} {extra}"
    out.write(line)
    out.flush()


def operator_channel(address: str, data_dir: str) -> grpc.Channel:
    """A channel presenting the operator's identity (see the module's docstring)."""
    trust = embedded_trust.load(Path(data_dir))
    settings = trust.settings() if trust is not None else Settings.from_env("ops_api")
    return open_channel(address, settings)


def _registry(data_dir: str) -> Registry:
    path = Path(data_dir) / REGISTRY_FILE
    if not path.exists():
        raise OperationError(f"no {path}: start the system with `carbon up` or pass the address")
    return Registry.load(path)


def chosen_regions(args: argparse.Namespace) -> list[RegionEntry]:
    regions = _registry(args.data_dir).regions
    wanted = [code for code in (args.region or "").split(",") if code]
    chosen = [region for region in regions if not wanted or region.region_code in wanted]
    if wanted and len(chosen) != len(wanted):
        raise OperationError(f"unknown region in {args.region!r}; the system runs {[r.region_code for r in regions]}")
    return chosen


def migrate(args: argparse.Namespace) -> int:
    """Every service's database to head: the embedded SQLite files of each region (or one database by
    CARBON_DATABASE_URL with --service)."""
    if args.database_url:
        if not args.service:
            raise OperationError("--database-url needs --service (the schema to migrate)")
        targets = [(args.service, "", args.database_url)]
    else:
        path = Path(args.data_dir) / REGISTRY_FILE
        registry = Registry.load(path) if path.exists() else plan(list(DEFAULT_REGIONS))
        targets = [
            (spec.service, spec.region_code, _embedded_url(spec.service, spec.region_code, args.data_dir))
            for spec in registry.processes()
            if spec.service in (*MIGRATED_SERVICES, "gateway") and (not args.service or spec.service == args.service)
        ]
    for index, (service, region, url) in enumerate(targets, start=1):
        progress(sys.stdout, f"migrating {index}/{len(targets)}", index - 1, len(targets), f"{service} {region}")
        engine = db.make_engine(url, pool_size=1)
        try:
            db.migrate(service, engine)
        finally:
            engine.dispose()
    progress(sys.stdout, "migrated", len(targets), len(targets), " " * 24)
    print(f"\n{len(targets)} databases at head")
    return 0


def _embedded_url(service: str, region: str, data_dir: str) -> str:
    return Settings(service=service, region_code=region or "000000", data_dir=Path(data_dir)).effective_database_url()


def jobs(args: argparse.Namespace) -> int:
    """Each region's scheduled job runs and the replica leading its scheduler."""
    for region in chosen_regions(args):
        with operator_channel(region.ledger_address, args.data_dir) as channel:
            stub = ledger_grpc.LedgerServiceStub(channel)
            listed = stub.ListJobRuns(lpb.ListJobRunsRequest(job=args.job, limit=args.limit), timeout=RPC_TIMEOUT_S)
        until = listed.lease_expires_at.ToDatetime().isoformat() if listed.HasField("lease_expires_at") else "-"
        print(f"{region.region_code} {region.name_en}: leader {listed.lease_holder or '-'} (lease until {until})")
        rows = [("job", "period", "state", "items", "points", "attempts", "updated (UTC)", "error")]
        for run in listed.runs:
            state = lpb.JobRunState.Name(run.state).removeprefix("JOB_RUN_STATE_")
            updated = run.updated_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
            rows.append(
                (run.job, run.period, state, f"{run.items:,}", f"{run.points:,}", str(run.attempts), updated, run.error)
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def import_events(args: argparse.Namespace, secret: str) -> int:
    """Events from a CSV or JSONL file, signed as a partner and submitted to one region's ingest in batches."""
    path = Path(args.file)
    events = list(read_events(path))
    if not 1 <= args.batch_size <= MAX_IMPORT_BATCH:
        raise OperationError(f"--batch-size must be 1-{MAX_IMPORT_BATCH}")
    address = args.ingest or _import_region(args).ingest_address
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    checkpoint = path.with_name(path.name + ".imported")
    skip = _checkpoint(checkpoint, digest) if not args.restart else 0
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    sent = skip
    try:
        with operator_channel(address, args.data_dir) as channel:
            stub = ingest_grpc.IngestServiceStub(channel)
            for start in range(skip, len(events), args.batch_size):
                chunk = events[start : start + args.batch_size]
                request = inpb.SubmitEventsRequest(
                    partner_id=args.partner_id, batch_id=f"import:{digest}:{start}", events=chunk
                )
                sign_request(request, args.key_id, secret)
                for result in stub.SubmitEvents(request, timeout=RPC_TIMEOUT_S).results:
                    outcomes[inpb.EventOutcome.Name(result.outcome).removeprefix("EVENT_OUTCOME_")] += 1
                    if result.outcome == inpb.EVENT_OUTCOME_REJECTED:
                        reasons[result.reason] += 1
                sent = start + len(chunk)
                checkpoint.write_text(json.dumps({"file_sha256": digest, "events_answered": sent}))
                summary = ", ".join(f"{name.lower()} {count:,}" for name, count in sorted(outcomes.items()))
                progress(sys.stdout, "importing", sent, len(events), summary)
    except KeyboardInterrupt:
        print(f"\ninterrupted after {sent:,} of {len(events):,} events: run the same command again to continue")
        return 130
    print()
    if skip:
        print(f"skipped the first {skip:,} events, answered by an earlier run ({checkpoint})")
    print(f"{len(events):,} events: " + ", ".join(f"{n.lower()} {c:,}" for n, c in sorted(outcomes.items())))
    for reason, count in reasons.most_common():
        print(f"  rejected {reason}: {count:,}")
    return 0


def _import_region(args: argparse.Namespace) -> RegionEntry:
    if not args.region or "," in args.region:
        raise OperationError("import: give --region (the ingest the partner reports to) or --ingest ADDRESS")
    return chosen_regions(args)[0]


def _checkpoint(path: Path, digest: str) -> int:
    """Events a previous run of the same file had answered; 0 for another file or none."""
    if not path.exists():
        return 0
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        return 0
    return int(saved.get("events_answered", 0)) if saved.get("file_sha256") == digest else 0


def read_events(path: Path) -> Iterator[inpb.Event]:
    """The file's events in order: JSONL (one object a line) or CSV (a header row), by the file's extension. Fields:
    event_id, behaviour, occurred_at (ISO 8601 with an offset), region_code, quantity_milli or quantity (units),
    account_number or platform + platform_user_id or phone_number, optional evidence_ref and tier."""
    with path.open(encoding="utf-8", newline="") as source:
        if path.suffix.lower() == ".csv":
            rows: Iterator[dict[str, Any]] = iter(csv.DictReader(source))
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            rows = (json.loads(line) for line in source if line.strip())
        else:
            raise OperationError(f"{path}: expected a .csv or .jsonl file")
        for line, row in enumerate(rows, start=1):
            try:
                yield _event(row)
            except (KeyError, ValueError) as error:
                raise OperationError(f"{path}: record {line}: {error}") from None


def _event(row: dict[str, Any]) -> inpb.Event:
    occurred = datetime.fromisoformat(str(row["occurred_at"]))
    if occurred.tzinfo is None:
        raise ValueError("occurred_at needs a UTC offset")
    quantity = row.get("quantity_milli") or ""
    milli = int(quantity) if str(quantity).strip() else round(float(row["quantity"]) * 1000)
    stamp = Timestamp()
    stamp.FromDatetime(occurred)
    return inpb.Event(
        event_id=str(row["event_id"]),
        account=_account(row),
        behaviour=str(row["behaviour"]),
        quantity_milli=milli,
        occurred_at=stamp,
        region_code=str(row["region_code"]),
        evidence_ref=str(row.get("evidence_ref") or ""),
        tier=str(row.get("tier") or ""),
    )


def _account(row: dict[str, Any]) -> common_pb2.AccountRef:
    """The record's account: its number, else its platform binding, else its phone number (ingest checks it)."""
    if row.get("account_number"):
        return common_pb2.AccountRef(account_number=str(row["account_number"]))
    if row.get("platform") or row.get("platform_user_id"):
        binding = common_pb2.ChannelBinding(
            platform=str(row.get("platform") or ""), platform_user_id=str(row.get("platform_user_id") or "")
        )
        return common_pb2.AccountRef(binding=binding)
    return common_pb2.AccountRef(phone_number=str(row.get("phone_number") or ""))
