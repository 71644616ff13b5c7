"""Benchmark: what a read of a long-lived account costs, beside one primary-key select (issue 19 item 5).

A ledger on PostgreSQL is preloaded: one account with CARBON_BENCH_READS_ENTRIES journal entries (default 10,000:
earns over 700 days, so ~700 lots, and one spend per ten earns) through the ledger's own write path (PostTransfers'
use case, in this process), among CARBON_BENCH_READS_OTHERS other accounts' earns (default 1,000,000 over 100,000
accounts, set-based SQL that writes what an earn writes, sealed into blocks: bench_preload_support.py), so that the
account is a small share of the journal, as a resident's is. With CARBON_BENCH_KEEP=1 the preloaded schema is kept
and a later run with the same sizes reuses it (the bench only reads); with CARBON_BENCH_LOCK=<flock file> only the
measurements take the machine's benchmark lock, not the preload. Then, each call repeated and timed
by its median, in this process against the same engine:
- the baseline: one primary-key select of the account's row (`SELECT ... FROM accounts WHERE account = ?`), in a
  transaction as a plain `engine.connect()` makes it (BEGIN, the select, ROLLBACK); and for reference, not in the
  ratio, the same select without a transaction (`one_statement_transaction`), as the statement's pages run since
  ADR 0029;
- GetBalance's use case (reads.get_balance);
- ListStatementEntries' first page of 50 and a page of 50 from the middle of the history (by its page token);
- a sparse account's statement: one of the others (OTHERS / 100,000 entries spread over the whole journal, so a few
  in each of the statement index's buckets, ADR 0136): its first page, and its whole statement page by page (the
  pages it took and the time), not in the ratio;
- for reference, a walk over the whole statement page by page, and CheckConservation's use cases, the full audit
  and the incremental check (seconds, and the peak of Python memory each allocated, by tracemalloc; issue 19 asks
  for under a second at 5M transfers: CARBON_BENCH_READS_OTHERS=5000000), none in the ratio.
Last line: one JSON object; `ratio` = primary-key select ÷ the slowest of balance and the two statement pages (higher
is better; issue 19 asks for at least 1/3: a page and a balance within 3x a primary-key select).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import bench_preload_support as preload_support  # type: ignore[import-not-found,unused-ignore]
from bench_ledger_support import REGION, account_number  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Engine, text

from ledger_svc.domain.conservation import Conservation
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.time import US_PER_DAY, to_us
from ledger_svc.domain.transfers import TransferRequest
from ledger_svc.service import audit, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit import db
from service_kit.accounts import ISSUANCE_ACCOUNT, REDEMPTION_ACCOUNT

ENTRIES = int(os.environ.get("CARBON_BENCH_READS_ENTRIES", "10000"))
OTHERS = int(os.environ.get("CARBON_BENCH_READS_OTHERS", "1000000"))
OTHER_ACCOUNTS = 100_000
REPEATS = int(os.environ.get("CARBON_BENCH_READS_REPEATS", "200"))
PAGE = 50
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)
TARGET = account_number(1)
# The others are numbered from here, well above the target's number: real account numbers (with their check digit),
# so that one of them can be read through the service as a sparse account.
OTHERS_FIRST = 1_000_000
SPARSE = account_number(OTHERS_FIRST + 4242)


def _earn(transfer_id: str, account: str, days_ago: int) -> TransferRequest:
    earned_at_us = to_us(NOW) - days_ago * US_PER_DAY
    return TransferRequest(
        transfer_id, ISSUANCE_ACCOUNT, account, 10, int(TransferCode.EARN), earned_at_us=earned_at_us
    )


OTHER_DAYS = 30


def preload(ledger: LedgerContext, url: str) -> None:
    """The others' earns set-based (bench_preload_support.py: ingest's ids over 30 days, batches of 1,000 sealed into
    blocks), and after each chunk of them a share of the target's history through the ledger's own PostTransfers use
    case (earns in batches of 1,000, a spend after every ten earns as a batch of spends): the target's entries lie
    among the others' as a long-lived account's do."""
    spends = ENTRIES // 11
    earns = ENTRIES - spends
    chunks = -(-OTHERS // preload_support.CHUNK)
    others = [account_number(OTHERS_FIRST + n) for n in range(OTHER_ACCOUNTS)]

    def targets_share(chunk: int) -> None:
        mine = range(chunk * earns // chunks, (chunk + 1) * earns // chunks)
        batch = [_earn(f"t-{n}", TARGET, 700 - n * 700 // earns) for n in mine]
        for part in range(0, len(batch), 1000):
            transfers.post_transfers(ledger, batch[part : part + 1000])
        spent = [
            TransferRequest(f"s-{chunk}-{n}", TARGET, REDEMPTION_ACCOUNT, 5, int(TransferCode.REDEEM))
            for n in range(len(batch) // 10)
        ]
        if spent:
            transfers.post_transfers(ledger, spent)  # the general path, as a batch

    preload_support.preload_earns(url, OTHERS, others, to_us(NOW), OTHER_DAYS, between=targets_share)
    ledger.seal_everything()


def _timed_check(check: Callable[[LedgerContext], Conservation], ledger: LedgerContext) -> tuple[float, float]:
    """Seconds and peak MB of Python allocations of one conservation check, which must balance."""
    tracemalloc.start()
    started = time.perf_counter()
    outcome = check(ledger)
    elapsed_s = time.perf_counter() - started
    peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    assert outcome.balanced, outcome.problems
    return elapsed_s, peak_mb


def median_ms(call: Callable[[], object]) -> float:
    call()  # warm: the pool's connection, prepared plans
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(ledger: LedgerContext, engine: Engine) -> dict[str, float]:
    def pk_select() -> object:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT balance_points, held_points FROM accounts WHERE account = :a"), {"a": TARGET}
            ).one()

    def pk_select_without_transaction() -> object:
        with db.one_statement_transaction(engine) as conn:
            return conn.execute(
                text("SELECT balance_points, held_points FROM accounts WHERE account = :a"), {"a": TARGET}
            ).one()

    middle_token = ""
    for _ in range(ENTRIES // PAGE // 2):
        middle_token = reads.list_statement_entries(ledger, TARGET, PAGE, middle_token, [], 0, 0).next_page_token
    walk_started = time.perf_counter()
    token, walked = "", 0
    while True:
        page = reads.list_statement_entries(ledger, TARGET, PAGE, token, [], 0, 0)
        walked += len(page.entries)
        token = page.next_page_token
        if not token:
            break
    walk_s = time.perf_counter() - walk_started
    assert walked >= ENTRIES * 0.99, walked
    sparse_started = time.perf_counter()
    token, sparse_entries, sparse_pages = "", 0, 0
    while True:
        page = reads.list_statement_entries(ledger, SPARSE, PAGE, token, [], 0, 0)
        sparse_entries += len(page.entries)
        sparse_pages += 1
        token = page.next_page_token
        if not token:
            break
    sparse_walk_ms = (time.perf_counter() - sparse_started) * 1000
    assert sparse_entries == OTHERS // OTHER_ACCOUNTS, sparse_entries
    conservation_s, conservation_peak_mb = _timed_check(audit.check_conservation, ledger)
    incremental_s, incremental_peak_mb = _timed_check(audit.check_conservation_incremental, ledger)
    return {
        "pk_select_ms": median_ms(pk_select),
        "balance_ms": median_ms(lambda: reads.get_balance(ledger, TARGET)),
        "first_page_ms": median_ms(lambda: reads.list_statement_entries(ledger, TARGET, PAGE, "", [], 0, 0)),
        "middle_page_ms": median_ms(lambda: reads.list_statement_entries(ledger, TARGET, PAGE, middle_token, [], 0, 0)),
        "sparse_first_page_ms": median_ms(lambda: reads.list_statement_entries(ledger, SPARSE, PAGE, "", [], 0, 0)),
        "pk_select_without_transaction_ms": median_ms(pk_select_without_transaction),
        "sparse_walk_ms": sparse_walk_ms,
        "sparse_pages": sparse_pages,
        "sparse_entries": sparse_entries,
        "walk_s": walk_s,
        "conservation_s": conservation_s,
        "conservation_peak_mb": conservation_peak_mb,
        "conservation_incremental_s": incremental_s,
        "conservation_incremental_peak_mb": incremental_peak_mb,
        "entries": walked,
    }


def main() -> None:
    with preload_support.schema("bench_reads", f"{ENTRIES}_{OTHERS}") as (url, preloaded):
        engine = db.make_engine(url)
        db.migrate("ledger_svc", engine)
        ledger = LedgerContext(engine, REGION, lambda: NOW)
        started = time.perf_counter()
        if not preloaded:
            preload(ledger, url)
            preload_support.mark_preloaded(url)
        preload_s = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text(f"ANALYZE {preload_support.LEDGER_TABLES}"))
            lots = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM lots WHERE account = :a)"
                    " + (SELECT count(*) FROM recent_lots WHERE account = :a)"
                ),
                {"a": TARGET},
            ).scalar_one()
        with preload_support.measuring():
            figures = measure(ledger, engine)
        engine.dispose()
    slowest = max(figures["balance_ms"], figures["first_page_ms"], figures["middle_page_ms"])
    print(
        f"preloaded {figures['entries']:,} entries of one account ({lots} lots)"
        f" + {OTHERS:,} others in {preload_s:.0f} s"
    )
    for name in ("pk_select_ms", "pk_select_without_transaction_ms", "balance_ms", "first_page_ms", "middle_page_ms"):
        print(f"{name:32s} {figures[name]:8.2f} ms (median of {REPEATS})")
    print(f"whole statement walked in pages of {PAGE}: {figures['walk_s']:.2f} s")
    print(
        f"sparse account ({figures['sparse_entries']:.0f} entries): first page"
        f" {figures['sparse_first_page_ms']:.2f} ms (median of {REPEATS}); whole statement"
        f" {figures['sparse_pages']:.0f} pages, {figures['sparse_walk_ms']:.2f} ms"
    )
    full_s, full_mb = figures["conservation_s"], figures["conservation_peak_mb"]
    print(f"CheckConservation, full audit: {full_s:.2f} s, {full_mb:.1f} MB peak")
    print(
        f"CheckConservation, incremental: {figures['conservation_incremental_s']:.3f} s,"
        f" {figures['conservation_incremental_peak_mb']:.2f} MB peak"
    )
    summary = {"bench": "ledger_reads", "lots": lots, **{k: round(v, 3) for k, v in figures.items()}}
    print(
        json.dumps(
            {
                **summary,
                "baseline_pk_select_ms": summary["pk_select_ms"],
                # For reference: against the select without a transaction, as the pages now run (not the ratio).
                "ratio_without_transaction_baseline": round(figures["pk_select_without_transaction_ms"] / slowest, 3),
                "ratio": round(figures["pk_select_ms"] / slowest, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
