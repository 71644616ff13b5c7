"""Benchmark: what a read of a long-lived account costs, beside one primary-key select (issue 19 item 5).

A ledger on PostgreSQL is preloaded through its own write path (PostTransfers' use case, in this process): one account
with CARBON_BENCH_READS_ENTRIES journal entries (default 10,000: earns over 700 days, so ~700 lots, and one spend per
ten earns) among CARBON_BENCH_READS_OTHERS other accounts' earns (default 100,000). Then, each call repeated and timed
by its median, in this process against the same engine:
- the baseline: one primary-key select of the account's row (`SELECT ... FROM accounts WHERE account = ?`);
- GetBalance's use case (reads.get_balance);
- ListStatementEntries' first page of 50 and a page of 50 from the middle of the history (by its page token);
- for reference, a walk over the whole statement page by page, and CheckConservation's use case (seconds, and the
  peak of Python memory it allocated, by tracemalloc), neither in the ratio.
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

from bench_ledger_support import REGION, account_number, private_schema  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Engine, text

from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.time import US_PER_DAY, to_us
from ledger_svc.domain.transfers import TransferRequest
from ledger_svc.service import audit, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit import db
from service_kit.accounts import ISSUANCE_ACCOUNT, REDEMPTION_ACCOUNT

ENTRIES = int(os.environ.get("CARBON_BENCH_READS_ENTRIES", "10000"))
OTHERS = int(os.environ.get("CARBON_BENCH_READS_OTHERS", "100000"))
OTHER_ACCOUNTS = 20_000
REPEATS = int(os.environ.get("CARBON_BENCH_READS_REPEATS", "200"))
PAGE = 50
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)
TARGET = account_number(1)


def _earn(transfer_id: str, account: str, days_ago: int) -> TransferRequest:
    earned_at_us = to_us(NOW) - days_ago * US_PER_DAY
    return TransferRequest(
        transfer_id, ISSUANCE_ACCOUNT, account, 10, int(TransferCode.EARN), earned_at_us=earned_at_us
    )


def preload(ledger: LedgerContext) -> None:
    """The target's history (earns, a spend after every ten) and the other accounts' earns, interleaved in time as
    they would be, through the ledger's own PostTransfers use case in batches of 1,000."""
    spends = ENTRIES // 11
    earns = ENTRIES - spends
    other_per_batch = max(1, OTHERS * 1000 // max(earns, 1))
    done_others = 0
    for first in range(0, earns, 1000):
        batch = [_earn(f"t-{n}", TARGET, 700 - n * 700 // earns) for n in range(first, min(first + 1000, earns))]
        count = min(other_per_batch, OTHERS - done_others)
        batch += [
            _earn(f"o-{n}", account_number(2 + n % OTHER_ACCOUNTS), 700 - first * 700 // earns)
            for n in range(done_others, done_others + count)
        ]
        done_others += count
        for part in range(0, len(batch), 1000):
            transfers.post_transfers(ledger, batch[part : part + 1000])
        spent = [
            TransferRequest(f"s-{first}-{n}", TARGET, REDEMPTION_ACCOUNT, 5, int(TransferCode.REDEEM))
            for n in range(min(1000, earns - first) // 10)
        ]
        transfers.post_transfers(ledger, spent)  # the general path, as a batch
    ledger.seal_everything()


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
    tracemalloc.start()
    audit_started = time.perf_counter()
    assert audit.check_conservation(ledger).balanced
    conservation_s = time.perf_counter() - audit_started
    conservation_peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return {
        "pk_select_ms": median_ms(pk_select),
        "balance_ms": median_ms(lambda: reads.get_balance(ledger, TARGET)),
        "first_page_ms": median_ms(lambda: reads.list_statement_entries(ledger, TARGET, PAGE, "", [], 0, 0)),
        "middle_page_ms": median_ms(lambda: reads.list_statement_entries(ledger, TARGET, PAGE, middle_token, [], 0, 0)),
        "walk_s": walk_s,
        "conservation_s": conservation_s,
        "conservation_peak_mb": conservation_peak_mb,
        "entries": walked,
    }


def main() -> None:
    with private_schema("bench_reads") as url:
        engine = db.make_engine(url)
        db.migrate("ledger_svc", engine)
        ledger = LedgerContext(engine, REGION, lambda: NOW)
        started = time.perf_counter()
        preload(ledger)
        preload_s = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
            lots = conn.execute(text("SELECT count(*) FROM lots WHERE account = :a"), {"a": TARGET}).scalar_one()
        figures = measure(ledger, engine)
        engine.dispose()
    slowest = max(figures["balance_ms"], figures["first_page_ms"], figures["middle_page_ms"])
    print(
        f"preloaded {figures['entries']:,} entries of one account ({lots} lots)"
        f" + {OTHERS:,} others in {preload_s:.0f} s"
    )
    for name in ("pk_select_ms", "balance_ms", "first_page_ms", "middle_page_ms"):
        print(f"{name:16s} {figures[name]:8.2f} ms (median of {REPEATS})")
    print(f"whole statement walked in pages of {PAGE}: {figures['walk_s']:.2f} s")
    print(f"CheckConservation: {figures['conservation_s']:.2f} s, {figures['conservation_peak_mb']:.1f} MB peak")
    summary = {"bench": "ledger_reads", "lots": lots, **{k: round(v, 3) for k, v in figures.items()}}
    print(
        json.dumps(
            {
                **summary,
                "baseline_pk_select_ms": summary["pk_select_ms"],
                "ratio": round(figures["pk_select_ms"] / slowest, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
