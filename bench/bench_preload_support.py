"""Preloading a ledger with millions of earns for the scale benchmarks (issue 19), and keeping a preloaded schema for
the next run.

`preload_earns` writes, set-based, what the credit path leaves for earns as ingest sends them: one journal batch per
1,000 earns (a PostTransfers call), each earn a journal row debiting issuance under the id ingest sends (the time it
was accepted, then a digest: ingest_svc/domain/event_rows.transfer_id_for), then the accounts' maintained balances,
their lots (one per account and earning day) and issuance's balance; and the batches sealed into blocks by the
ledger's own sealer (store/chain.seal), which stores each block's system sums as it does in service. What it cannot
write is the batches' entries hashes (it writes a placeholder), so VerifyJournal is not meaningful on a preloaded
schema; the full and the incremental conservation checks hold.

`measuring` takes the machine's benchmark lock (CARBON_BENCH_LOCK) for the measured part only, after the preload.

`schema` gives a fresh private schema, or with CARBON_BENCH_KEEP=1 a kept one named after what it holds: a run finds
the schema a previous run preloaded (a marker table says the preload finished) and skips the preload, and leaves it
for the next run. Drop kept schemas by hand when done (`DROP SCHEMA <name> CASCADE`; the bench prints the name).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

from bench_ledger_support import database_url, private_schema  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from ledger_svc.domain.time import DEFAULT_VALIDITY_MONTHS, US_PER_DAY, day_of, lot_expiry_us
from ledger_svc.store.chain import seal
from service_kit import db

KEEP = os.environ.get("CARBON_BENCH_KEEP", "") == "1"
LOCK = os.environ.get("CARBON_BENCH_LOCK", "")
EARNS_PER_BATCH = 1000  # ingest's credit batches: one PostTransfers call, one journal batch
CHUNK = 250_000  # earns per preload transaction
_MARKER = "bench_preloaded"
# ANALYZE names its tables: a bare ANALYZE takes every schema's tables and the catalog, and two at once deadlock.
LEDGER_TABLES = (
    "transfers, journal_batches, journal_block_sums, accounts, lots, recent_lots, system_balances, chain_head"
)
INGEST_TABLES = "ingest_events, ingest_credit_batches, ingest_cap_counters, ingest_daily_stats"

_BATCHES = """
INSERT INTO journal_batches (entries_count, entries_hash, created_at_us)
SELECT least(:per_batch, :last - g + 1), 'preload', :now
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint), :per_batch) g
RETURNING batch_id
"""
# The earn numbered g of :total: earned on the day g * days / total of the last `days` (the oldest first, as they
# arrived), accepted g ms after that day's instant, so that the ids (accepted time first) grow with g as a running
# ledger's do; its account the one numbered by a stride prime to the account count, so that consecutive earns credit
# scattered accounts, as a day's credits do. Accounts come from a numbered table joined by number: a subscript of a
# text array walks the array from its start (its elements have varying lengths), so picking from half a million
# accounts cost more than the rest of the insert together.
_JOURNAL = """
INSERT INTO transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,
                       co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, credit_balance_after)
SELECT 'earn-' || lpad(to_hex(at.us / 1000 + g), 11, '0') || '-'
       || substr(encode(sha256(convert_to(:source || chr(31) || :event_prefix || g, 'UTF8')), 'hex'), 1, 40),
       :first_batch + (g - :first) / :per_batch,
       'system:issuance', numbers.account, 10, 1, 'event-' || g, 515, '', at.us, :now, '',
       10 * (g / :account_count + 1)  -- the account's balance after: the earns numbered n, n + count, ... are its
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
CROSS JOIN LATERAL (SELECT CAST(:now AS bigint) - (:days - 1 - g * :days / :total) * :day_us AS us) AS at
JOIN bench_preload_accounts numbers ON numbers.n = (g * 7919) % :account_count
ORDER BY g
"""
_ACCOUNTS_TABLE = [
    "DROP TABLE IF EXISTS bench_preload_accounts",
    "CREATE UNLOGGED TABLE bench_preload_accounts (n bigint PRIMARY KEY, account text NOT NULL)",
    """INSERT INTO bench_preload_accounts SELECT number - 1, account
       FROM unnest(CAST(:accounts AS text[])) WITH ORDINALITY AS a(account, number)""",
    "ANALYZE bench_preload_accounts",
]


def numbered_accounts(conn: Connection, accounts: list[str]) -> None:
    """The accounts, numbered from 0, as the table the preload statements pick them from (dropped after)."""
    for statement in _ACCOUNTS_TABLE:
        conn.execute(text(statement), {"accounts": accounts})


_PRELOADED = "batch_id IN (SELECT batch_id FROM journal_batches WHERE entries_hash = 'preload')"
# An account's opened_after_seq is what the credit path would have read before its first earn: just below it. The
# lots are where the credit path and the daily lot mover (ADR 0137) leave them: the closed days' (before yesterday)
# in lots, by account, with every account moved through the last closed day; yesterday's and today's in recent_lots.
_LOTS_OF_PRELOAD = f"""
        SELECT t.credit_account, d.earned_on, d.expires_at_us, sum(t.amount_points), sum(t.amount_points)
        FROM transfers t
        JOIN unnest(CAST(:earned_at AS bigint[]), CAST(:earned_on AS date[]), CAST(:expires AS bigint[]))
             AS d(earned_at_us, earned_on, expires_at_us) ON d.earned_at_us = t.earned_at_us
        WHERE t.{_PRELOADED} AND d.earned_on {{}} :moved_through
        GROUP BY t.credit_account, d.earned_on, d.expires_at_us"""
_BOOKS = [
    f"""INSERT INTO accounts (account, balance_points, held_points, created_at_us, opened_after_seq, lots_moved_through)
        SELECT credit_account, sum(amount_points), 0, :now, min(seq) - 1, :moved_through FROM transfers
        WHERE {_PRELOADED}
        GROUP BY credit_account
        ON CONFLICT (account) DO UPDATE SET balance_points = accounts.balance_points + excluded.balance_points,
            lots_moved_through = greatest(accounts.lots_moved_through, excluded.lots_moved_through)""",
    "INSERT INTO lots (account, earned_on, expires_at_us, credited_points, remaining_points)"
    + _LOTS_OF_PRELOAD.format("<=")
    + " ORDER BY t.credit_account, d.expires_at_us, d.earned_on",
    "INSERT INTO recent_lots (account, earned_on, expires_at_us, credited_points, remaining_points)"
    + _LOTS_OF_PRELOAD.format(">")
    + " ORDER BY d.earned_on, t.credit_account",
    f"""INSERT INTO system_balances (account, shard, balance_points)
        SELECT 'system:issuance', 0, -sum(amount_points) FROM transfers WHERE {_PRELOADED}
        ON CONFLICT (account, shard) DO UPDATE SET balance_points = system_balances.balance_points
            + excluded.balance_points""",
]


def insert_earns(
    conn: Connection,
    first: int,
    last: int,
    total: int,
    accounts: list[str],
    now_us: int,
    days: int,
    source: str = "preload",
) -> None:
    """Journal batches and rows of the earns numbered first..last (books come after, from all of them at once). The
    earn numbered g has the transfer id ingest gives partner `source`'s event "g" accepted at its time."""
    bounds = {"first": first, "last": last, "now": now_us, "per_batch": EARNS_PER_BATCH}
    first_batch = min(conn.execute(text(_BATCHES), bounds).scalars())
    shape = {"account_count": len(accounts), "days": days, "day_us": US_PER_DAY, "total": total}
    conn.execute(text(_JOURNAL), {**bounds, **shape, "first_batch": first_batch, "source": source, "event_prefix": ""})


def write_books_and_seal(conn: Connection, now_us: int, days: int) -> None:
    """Balances, lots and issuance's balance from every preloaded earn; then the sealer's blocks and sums."""
    earned_at = [now_us - k * US_PER_DAY for k in range(days)]
    earned_on = [day_of(instant) for instant in earned_at]
    lots = {
        "earned_at": earned_at,
        "earned_on": earned_on,
        "expires": [lot_expiry_us(day, DEFAULT_VALIDITY_MONTHS) for day in earned_on],
    }
    moved_through = day_of(now_us) - timedelta(days=2)  # lot_mover.closed_through(today)
    for statement in _BOOKS:
        conn.execute(text(statement), {"now": now_us, "moved_through": moved_through, **lots})
    while seal(conn, wait=True):
        pass


def preload_earns(
    url: str,
    count: int,
    accounts: list[str],
    now_us: int,
    days: int,
    between: Callable[[int], None] | None = None,
    source: str = "preload",
    migrate: bool = True,
) -> float:
    """`count` earns over `days` days on `accounts` (see the module's docstring), in chunks of CHUNK, each its own
    transaction; `between(chunk_number)` runs after each chunk (a bench's own writes among the others'). Then
    ANALYZE. Returns the seconds it took."""
    engine = db.make_engine(url)
    if migrate:
        db.migrate("ledger_svc", engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        numbered_accounts(conn, accounts)
    for number, first in enumerate(range(0, count, CHUNK)):
        with engine.begin() as conn:
            insert_earns(conn, first, min(first + CHUNK, count) - 1, count, accounts, now_us, days, source)
        if between is not None:
            between(number)
    with engine.begin() as conn:
        write_books_and_seal(conn, now_us, days)
        conn.exec_driver_sql("DROP TABLE bench_preload_accounts")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {LEDGER_TABLES}")
    engine.dispose()
    return time.perf_counter() - started


# Ingest's side of the same earns: partner :partner's event "g", accepted when the ledger's earn g was (the same
# transfer id), scored at 10
# points, PENDING under a credit batch that was posted (it reads CREDITED), one credit batch per 500 events as ingest
# forms them; then the batches, the daily cap counters and the daily statistics those events leave.
_EVENTS_PER_CREDIT_BATCH = 500
_INGEST_EVENTS = """
INSERT INTO ingest_events (partner_id, event_id, batch_id, account_number, behaviour, region_code, occurred_at, day,
                           quantity_milli, tier, evidence_ref, rule_version_id, counted_before_milli, counted_milli,
                           points, co2e_grams, reason, message, transfer_id, status, accepted_at, credit_batch_id)
SELECT CAST(:partner AS text), CAST(g AS text), 'pre-' || g / :per_batch, numbers.account, :behaviour,
       :region, at.t, CAST(at.t AT TIME ZONE 'Asia/Shanghai' AS date), 1000, '', 'pre:trip-' || g, :rule, 0, 1000,
       10, 515, '', '',
       'earn-' || lpad(to_hex(at.ms), 11, '0') || '-'
       || substr(encode(sha256(convert_to(CAST(:partner AS text) || chr(31) || g, 'UTF8')), 'hex'), 1, 40),
       'PENDING', at.t, 'pre-cb-' || g / :per_batch
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
     CROSS JOIN LATERAL (SELECT CAST(:now AS bigint) - (:days - 1 - g * :days / :total) * :day_us AS us) AS day
     CROSS JOIN LATERAL (SELECT day.us / 1000 + g AS ms) AS m
     CROSS JOIN LATERAL (SELECT m.ms, to_timestamp(m.ms / 1e3) AS t) AS at
     JOIN bench_preload_accounts numbers ON numbers.n = (g * 7919) % :account_count
ORDER BY g
"""
_INGEST_BOOKS = [
    """INSERT INTO ingest_credit_batches (credit_batch_id, partner_id, event_ids, state, created_at, posted_at)
       SELECT credit_batch_id, partner_id, '[' || string_agg('"' || event_id || '"', ',') || ']', 'POSTED',
              min(accepted_at), min(accepted_at)
       FROM ingest_events WHERE credit_batch_id LIKE 'pre-cb-%' GROUP BY credit_batch_id, partner_id""",
    """INSERT INTO ingest_cap_counters (account_number, behaviour, day, counted_milli)
       SELECT account_number, behaviour, day, sum(quantity_milli) FROM ingest_events
       WHERE credit_batch_id LIKE 'pre-cb-%' GROUP BY account_number, behaviour, day""",
    """INSERT INTO ingest_daily_stats (region_code, behaviour, day, events, points, co2e_grams)
       SELECT region_code, behaviour, day, count(*), sum(points), sum(co2e_grams) FROM ingest_events
       WHERE credit_batch_id LIKE 'pre-cb-%' GROUP BY region_code, behaviour, day""",
]


def _preload_ingest_events(
    ingest_url: str, count: int, accounts: list[str], shape: dict[str, str], days: int, now_us: int
) -> None:
    engine = db.make_engine(ingest_url)
    with engine.begin() as conn:
        numbered_accounts(conn, accounts)
    for first in range(0, count, CHUNK):
        bounds = {"first": first, "last": min(first + CHUNK, count) - 1, "now": now_us, "days": days}
        sizes = {"per_batch": _EVENTS_PER_CREDIT_BATCH, "day_us": US_PER_DAY, "total": count}
        sizes["account_count"] = len(accounts)
        with engine.begin() as conn:
            conn.execute(text(_INGEST_EVENTS), {**bounds, **sizes, **shape})
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bench_preload_accounts")
        for statement in _INGEST_BOOKS:
            conn.execute(text(statement))
        conn.exec_driver_sql(f"ANALYZE {INGEST_TABLES}")
    engine.dispose()


def preload_ingest(
    ingest_url: str, ledger_url: str, count: int, accounts: list[str], shape: dict[str, str], days: int
) -> float:
    """`count` accepted events of one partner (shape: partner, behaviour, region, rule) on `accounts` over `days`
    days before now, in ingest's tables, and their credits in the ledger's (preload_earns, with the transfer ids
    ingest stored), the two databases loaded side by side. Returns the seconds it took."""
    now_us = int(time.time() * 1_000_000)
    started = time.perf_counter()
    for service, url in (("ingest_svc", ingest_url), ("ledger_svc", ledger_url)):  # alembic's context is global
        engine = db.make_engine(url)
        db.migrate(service, engine)
        engine.dispose()
    with ThreadPoolExecutor(2) as pool:
        events = pool.submit(_preload_ingest_events, ingest_url, count, accounts, shape, days, now_us)
        credits = pool.submit(preload_earns, ledger_url, count, accounts, now_us, days, None, shape["partner"], False)
        events.result()
        credits.result()
    return time.perf_counter() - started


@contextmanager
def schema(prefix: str, key: str) -> Iterator[tuple[str, bool]]:
    """(URL, already preloaded): a private schema dropped afterwards, or with CARBON_BENCH_KEEP=1 the kept schema
    `<prefix>_keep_<key>` (created when missing, never dropped here)."""
    if not KEEP:
        with private_schema(prefix) as url:
            yield url, False
        return
    name = f"{prefix}_keep_{key}"
    admin = create_engine(database_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        ready = conn.execute(
            text("SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"),
            {"s": name, "t": _MARKER},
        ).first()
        if not ready:  # a preload stopped halfway is started again from nothing
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
    admin.dispose()
    print(f"kept schema {name} ({'preloaded before' if ready else 'preloading now'})")
    yield (
        (
            make_url(database_url())
            .update_query_dict({"options": f"-csearch_path={name}"})
            .render_as_string(hide_password=False)
        ),
        ready is not None,
    )


def mark_preloaded(url: str) -> None:
    """Records that a kept schema's preload finished (a run stopped halfway leaves no marker: the next reloads)."""
    if not KEEP:
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {_MARKER} (at timestamptz DEFAULT now())"))
    engine.dispose()


@contextmanager
def measuring() -> Iterator[None]:
    """The measured part of a run, under the machine's benchmark lock when CARBON_BENCH_LOCK names one (the flock
    file benchmarks on a shared machine take turns on): a long preload runs before it, outside the lock. Prints the
    load average when the lock is taken and when it is given back."""
    if not LOCK:
        yield
        return
    with open(LOCK, "a") as lock:
        waited = time.perf_counter()
        fcntl.flock(lock, fcntl.LOCK_EX)
        print(f"bench lock taken after {time.perf_counter() - waited:.0f} s; {_uptime()}", flush=True)
        try:
            yield
        finally:
            print(f"bench lock given back; {_uptime()}", flush=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
