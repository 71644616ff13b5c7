"""The benchmarks' same-run baselines: the plainest way the same PostgreSQL server does the same kind of work, measured
in the same run so that the machine's load (shared, noisy) hits ours and the baseline alike (issue 19 item 6).

- pgbench's built-in simple-update script (TPC-B-like, one account UPDATE + SELECT + history INSERT per
  transaction) for flows whose unit is a small write transaction: redemptions, transfers, openings;
- raw COPY of the same number of rows, one commit per batch, best of N on fresh tables, for batched earning: COPY is
  the server's fastest row path, so the figure swings far less with client CPU than an executemany;
- the same number of single-row UPDATE transactions at the same concurrency, for holds.

Each function takes a URL whose search_path names a private schema (bench_ledger_support.private_schema): pgbench's
tables land there (PGOPTIONS), never in a schema another run uses.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from sqlalchemy.engine import make_url

PGBENCH_SECONDS = int(os.environ.get("CARBON_BENCH_PGBENCH_SECONDS", "10"))


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A plain libpq DSN for psycopg and the environment pgbench reads (host, port, user, database, options)."""
    parsed = make_url(url)
    options = str(parsed.query.get("options", ""))
    env = {
        "PGHOST": parsed.host or "127.0.0.1",
        "PGPORT": str(parsed.port or 5432),
        "PGUSER": parsed.username or "postgres",
        "PGDATABASE": parsed.database or "postgres",
        "PGOPTIONS": options,
    }
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return url.replace("postgresql+psycopg://", "postgresql://"), env


def pgbench_tps(url: str, clients: int, seconds: int = PGBENCH_SECONDS) -> float:
    """pgbench simple-update (`-b simple-update`, scale 1, prepared statements) with `clients` connections for
    `seconds`: transactions per second without the initial connection time."""
    _, env = _libpq(url)
    env = {**os.environ, **env}
    subprocess.run(["pgbench", "-i", "-q", "-s", "1"], env=env, check=True, capture_output=True, text=True)
    threads = str(min(clients, os.cpu_count() or 1))
    script = ["-b", "simple-update", "-M", "prepared"]
    run = subprocess.run(
        ["pgbench", "-n", *script, "-c", str(clients), "-j", threads, "-T", str(seconds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", run.stdout)
    if not found:
        raise RuntimeError(f"no tps in pgbench's output: {run.stdout!r}")
    return float(found.group(1))


def copy_rows_per_s(url: str, rows: int, batch: int, best_of: int = 3) -> tuple[float, list[float]]:
    """Raw COPY of `rows` earn-shaped rows (id key, account, points, reference) in batches of `batch`, one commit
    each; `best_of` runs, each on a fresh table. The best (the least flattering denominator) and all rates."""
    dsn, _ = _libpq(url)
    lines = [f"{n}\t330000{n % 200_000:010d}\t10\tevent-{n}\n" for n in range(rows)]
    rates = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for attempt in range(best_of):
            table = f"raw_copy_{attempt}"
            conn.execute(
                f"CREATE TABLE {table} (id bigint PRIMARY KEY, account text NOT NULL, points bigint NOT NULL,"
                " reference text NOT NULL)"
            )
            started = time.perf_counter()
            for first in range(0, rows, batch):
                with conn.transaction(), conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write("".join(lines[first : first + batch]))
            rates.append(rows / (time.perf_counter() - started))
            conn.execute(f"DROP TABLE {table}")
    return max(rates), rates


def single_row_updates_per_s(url: str, clients: int, per_client: int) -> float:
    """`clients` connections, each committing `per_client` single-row UPDATEs of its own row."""
    dsn, _ = _libpq(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE baseline_counters (id int PRIMARY KEY, value bigint NOT NULL)")
        conn.execute("INSERT INTO baseline_counters SELECT g, 0 FROM generate_series(1, %s) g", (clients,))

    def client(c: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as own:
            for _ in range(per_client):
                own.execute("UPDATE baseline_counters SET value = value + 1 WHERE id = %s", (c + 1,))

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return clients * per_client / (time.perf_counter() - started)
