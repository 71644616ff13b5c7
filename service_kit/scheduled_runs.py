"""Operator commands that ask each region's scheduler for a run and follow it: `carbon expire` (a day's expiry
sweep), `carbon settle` (the monthly close) and `carbon remind` (a day's reminders).

The run is the ledger's (StartJobRun, ADR 0804): the command only asks for it and watches its progress, so
interrupting the command stops nothing but the watching, and running it again asks for the same run (idempotent per
job and period) and shows where it stands; a finished run is not run twice, a failed one is tried again.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from service_kit.operations import RPC_TIMEOUT_S, OperationError, chosen_regions, operator_channel, progress
from service_kit.topology import RegionEntry

POLL_S = 0.5
# A run no leader picks up in this long: the region's ledgers run without their scheduler (CARBON_LEDGER_SCHEDULER).
QUEUED_PATIENCE_S = 60.0
FINISHED = (lpb.JOB_RUN_STATE_DONE, lpb.JOB_RUN_STATE_FAILED)
MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def settle(args: argparse.Namespace) -> int:
    """The monthly close of a month (default: the month just ended) in each chosen region, followed to its end."""
    if args.month and not MONTH.match(args.month):
        raise OperationError(f"--month: expected YYYY-MM, got {args.month!r}")
    finished: dict[str, lpb.JobRun] = {}
    try:
        for region in chosen_regions(args):
            finished[region.region_code] = _follow(region, "monthly_close", args.month, args.data_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: the close goes on in the ledger; run `carbon settle` again to see it finish")
        _summary(finished)
        return 130
    _summary(finished)
    return 1 if any(run.state == lpb.JOB_RUN_STATE_FAILED for run in finished.values()) else 0


def expire(args: argparse.Namespace) -> int:
    """A day's expiry sweep (default: today's; lots expired by the start of that China day) in each chosen region,
    followed to its end. The leader sweeps in batches that each commit with their counts, so the progress shown is
    what committed; a second run of a done day sweeps nothing again (ask for today to take what expired since)."""
    if args.as_of and not DAY.match(args.as_of):
        raise OperationError(f"--as-of: expected YYYY-MM-DD, got {args.as_of!r}")
    finished: dict[str, lpb.JobRun] = {}
    try:
        for region in chosen_regions(args):
            finished[region.region_code] = _follow(region, "expiry", args.as_of, args.data_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: the sweep goes on in the ledger; run `carbon expire` again to see it finish")
        _summary(finished, _expired)
        return 130
    _summary(finished, _expired)
    return 1 if any(run.state == lpb.JOB_RUN_STATE_FAILED for run in finished.values()) else 0


def remind(args: argparse.Namespace) -> int:
    """A day's reminders (default: today's) in each chosen region: queued in identity's outbox, followed to the end."""
    if args.day and not DAY.match(args.day):
        raise OperationError(f"--day: expected YYYY-MM-DD, got {args.day!r}")
    finished: dict[str, lpb.JobRun] = {}
    try:
        for region in chosen_regions(args):
            finished[region.region_code] = _follow(region, "reminders", args.day, args.data_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: the run goes on in the ledger; run `carbon remind` again to see it finish")
        _summary(finished, _queued)
        return 130
    _summary(finished, _queued)
    return 1 if any(run.state == lpb.JOB_RUN_STATE_FAILED for run in finished.values()) else 0


def _follow(region: RegionEntry, job: str, period: str, data_dir: str) -> lpb.JobRun:
    """Asks for the run, then shows its progress until it is DONE or FAILED."""
    label = f"{job} {region.region_code}"
    with operator_channel(region.ledger_address, data_dir) as channel:
        stub = ledger_grpc.LedgerServiceStub(channel)
        run = stub.StartJobRun(lpb.StartJobRunRequest(job=job, period=period), timeout=RPC_TIMEOUT_S).run
        asked = time.monotonic()
        while run.state not in FINISHED:
            state = lpb.JobRunState.Name(run.state).removeprefix("JOB_RUN_STATE_").lower()
            progress(sys.stdout, f"{label} {run.period}", run.items, None, f"items, {run.points:,} points, {state}")
            if run.state == lpb.JOB_RUN_STATE_QUEUED and time.monotonic() - asked > QUEUED_PATIENCE_S:
                raise OperationError(f"{region.region_code}: no scheduler picked up the run; is a ledger running one?")
            time.sleep(POLL_S)
            request = lpb.ListJobRunsRequest(job=job, period=run.period, limit=1)
            run = stub.ListJobRuns(request, timeout=RPC_TIMEOUT_S).runs[0]
    state = lpb.JobRunState.Name(run.state).removeprefix("JOB_RUN_STATE_").lower()
    progress(sys.stdout, f"{label} {run.period}", run.items, None, f"items, {run.points:,} points, {state}")
    print()
    return run


def _closed(run: lpb.JobRun) -> str:
    return f"{run.points:,} points outstanding at the close"


def _queued(run: lpb.JobRun) -> str:
    return f"{run.items:,} reminders newly queued"


def _expired(run: lpb.JobRun) -> str:
    return f"{run.items:,} lots expired, {run.points:,} points"


def _summary(finished: dict[str, lpb.JobRun], counts: Callable[[lpb.JobRun], str] = _closed) -> None:
    for code, run in finished.items():
        state = lpb.JobRunState.Name(run.state).removeprefix("JOB_RUN_STATE_")
        print(f"{code} {run.period}: {state} after {run.attempts} attempt(s); {run.error or counts(run)}")
