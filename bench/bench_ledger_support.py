"""Shared pieces of the ledger benchmarks: a private schema, a ledger server process, timing helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service_kit.accounts import luhn_check_digit
from service_kit.db import normalize_url
from service_kit.logs import ready_address

REGION = "330000"


def database_url() -> str:
    return normalize_url(os.environ.get("CARBON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))


def account_number(n: int) -> str:
    payload = f"{REGION}{n:09d}"
    return payload + luhn_check_digit(payload)


@contextmanager
def private_schema(prefix: str) -> Iterator[str]:
    """A fresh schema for one run (URL with its search_path), dropped afterwards."""
    server_url = database_url()
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(server_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class LedgerProcess:
    processes: list[subprocess.Popen[str]]
    address: str


@contextmanager
def ledger_process(
    url: str, max_workers: int = 16, processes: int = 1, clock_offset: str = ""
) -> Iterator[LedgerProcess]:
    """`python -m ledger_svc` on a free port, as in production; stopped with SIGTERM afterwards. With `processes` > 1,
    that many servers share the port (SO_REUSEPORT; the kernel spreads connections, not calls, over them). A
    `clock_offset` ("+3d") runs them on the rehearsal clock that far ahead (CARBON_CLOCK_OFFSET)."""
    env = {
        **os.environ,
        "CARBON_DATABASE_URL": url,
        "CARBON_REGION": REGION,
        "CARBON_PORT": "0",
        "CARBON_LOG_LEVEL": "WARNING",
        "CARBON_MAX_WORKERS": str(max_workers),
        "CARBON_REUSE_PORT": "1" if processes > 1 else "0",
        "CARBON_CLOCK_OFFSET": clock_offset,
        **bench_trust_support.env("ledger_svc", REGION),
    }
    started: list[subprocess.Popen[str]] = []
    address = ""
    try:
        for _ in range(processes):
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger_svc"], env=env, stdout=subprocess.PIPE, text=True, bufsize=1
            )
            started.append(process)
            assert process.stdout is not None
            line = process.stdout.readline()
            ready = ready_address(line)
            if not ready:
                raise RuntimeError(f"ledger did not start: {line!r}")
            address = address or ready
            env["CARBON_PORT"] = address.rsplit(":", 1)[-1]
        yield LedgerProcess(started, address)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a loaded machine can hold a graceful stop past it: the run's figures
                process.kill()  # are taken, and a server left running would hold the bench's output pipe open
                process.wait(timeout=30)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
