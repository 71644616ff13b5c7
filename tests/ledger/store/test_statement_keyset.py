"""Statements by keyset (ADR 0116): a page reads about a page of the account's entries, and walking the statement
page by page lists every entry once, newest first, with its filters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from ledger_svc.service import reads, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import statement as statement_store
from tests.ledger.ledger_support import account_number, earn, spend

A = account_number(1)


def _scanned_rows(plan: Any) -> int:
    """Rows every scan node of the plan read (returned or removed by its filter, times its loops), summed over the
    plan's tree."""
    read = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
    own = read * plan["Actual Loops"] if "Scan" in plan["Node Type"] else 0
    return int(own) + sum(_scanned_rows(child) for child in plan.get("Plans", []))


def _history(ledger: LedgerContext, earns: int, spends: int, others: int) -> None:
    """`earns` earns of A's spread among `others` earns of a hundred times fewer other accounts, then `spends`
    spends of A's."""
    every = max(1, others // earns)
    batch = []
    for n in range(others):
        if n % every == 0 and n // every < earns:
            batch.append(earn(f"e{n // every}", A, 10))
        batch.append(earn(f"o{n}", account_number(2 + n % max(1, others // 100)), 10))
    for first in range(0, len(batch), 5000):
        transfers.post_transfers(ledger, batch[first : first + 5000])
    transfers.post_transfers(ledger, [spend(f"s{n}", A, 5) for n in range(spends)])


@pytest.mark.postgres
def test_a_statement_page_reads_a_page_of_entries_not_the_history(pg_ledger: LedgerContext) -> None:
    _history(pg_ledger, 300, 100, 30_000)
    with pg_ledger.engine.begin() as conn:
        conn.execute(text("ANALYZE transfers"))
        middle = conn.execute(
            text("SELECT seq FROM transfers WHERE credit_account = :a ORDER BY seq LIMIT 1 OFFSET 150"), {"a": A}
        ).scalar_one()
        scanned = []
        no_filters = statement_store.Filters([], 0, 0)
        first_page = statement_store.newest_bucket_query("postgresql", A, 51, no_filters)
        # A later page's first step: the bucket before the cursor (here the journal's one bucket).
        first_seq = (statement_store.entry_span(conn, A) or (1, 0))[0]
        bucket = statement_store.bucket_of(middle - 1)
        middle_page = statement_store.page_query("postgresql", A, 51, [bucket], first_seq, middle, no_filters)
        for query in (first_page, middle_page):
            sql = str(query.bound().compile(pg_ledger.engine, compile_kwargs={"literal_binds": True}))
            [plan] = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)).scalar_one()
            scanned.append(_scanned_rows(plan["Plan"] if isinstance(plan, dict) else json.loads(plan)["Plan"]))
    # Each side stops after a page: at most two pages of rows read, not the account's 400 entries (nor the
    # journal's 30,000 others between its old earns and its recent spends).
    assert all(rows <= 2 * 51 for rows in scanned), scanned


def test_walking_the_statement_lists_every_entry_once_newest_first(ledger: LedgerContext) -> None:
    _history(ledger, 60, 3, 100)
    walked, token = [], ""
    while True:
        page = reads.list_statement_entries(ledger, A, 7, token, [], 0, 0)
        walked += [(entry.transfer_id, entry.amount_points) for entry in page.entries]
        token = page.next_page_token
        if not token:
            break
    expected = [(f"s{n}", -5) for n in reversed(range(3))] + [(f"e{n}", 10) for n in reversed(range(60))]
    assert walked == expected
    spends_only, token = [], ""
    while True:
        page = reads.list_statement_entries(ledger, A, 2, token, [2], 0, 0)
        spends_only += [entry.transfer_id for entry in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert spends_only == ["s2", "s1", "s0"]
