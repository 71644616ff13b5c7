"""The statement's walk over ix_transfers_credit's buckets (ADR 0136): newest bucket first, never below the account's
first entry's bucket, at most BUCKETS_PER_PAGE buckets a page; a page may come back short or empty with a token that
resumes the walk where it stopped, and walking every page lists every entry once, newest first, with its filters."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select, text

from ledger_svc.domain.time import to_us
from ledger_svc.service import reads, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.statement import BUCKETS_PER_PAGE, bucket_of
from ledger_svc.store.tables import STATEMENT_BUCKET_BITS, accounts
from ledger_svc.store.tables import transfers as journal
from tests.distribution_keys import captured_statements
from tests.ledger.ledger_support import START, MovableClock, account_number, earn, spend

A = account_number(1)
OTHER = account_number(2)


def _jump_to_bucket(ledger: LedgerContext, bucket: int) -> None:
    """The journal's next seq is the first of `bucket`, as after ~2^18 others' entries per bucket between: on
    PostgreSQL the sequence is set; SQLite takes the greatest seq plus one, so a row of no test account is put
    just below."""
    first = bucket << STATEMENT_BUCKET_BITS
    with ledger.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('transfers_seq_seq', :last)"), {"last": first - 1})
            return
        filler = {"transfer_id": f"filler-{bucket}", "batch_id": 0, "debit_account": "x", "credit_account": "y"}
        filler |= {"amount_points": 1, "code": 1, "reference": "", "co2e_grams": 0, "metadata_json": ""}
        filler |= {"earned_at_us": 0, "posted_at_us": 0, "fingerprint": ""}
        conn.execute(insert(journal).values(seq=first - 1, **filler))


def _walk(ledger: LedgerContext, account: str, size: int, start_us: int = 0, end_us: int = 0) -> list[list[str]]:
    """Every page of the account's statement, each as its transfer ids."""
    pages, token = [], ""
    while True:
        page = reads.list_statement_entries(ledger, account, size, token, [], start_us, end_us)
        pages.append([entry.transfer_id for entry in page.entries])
        token = page.next_page_token
        if not token:
            return pages


def _seqs(ledger: LedgerContext, account: str) -> list[int]:
    with ledger.engine.connect() as conn:
        return list(conn.execute(select(journal.c.seq).where(journal.c.credit_account == account)).scalars())


def test_a_sparse_accounts_pages_walk_at_most_the_bucket_budget(ledger: LedgerContext) -> None:
    buckets = 2 * BUCKETS_PER_PAGE + 5
    for bucket in range(1, buckets + 1):
        _jump_to_bucket(ledger, bucket)
        transfers.post_transfers(ledger, [earn(f"e{bucket}", A, 1), earn(f"o{bucket}", OTHER, 1)])
    assert sorted({bucket_of(seq) for seq in _seqs(ledger, A)}) == list(range(1, buckets + 1))
    pages = _walk(ledger, A, 50)
    # One entry a bucket: each page holds the budget's buckets' entries, short of the page size, with a token.
    assert [len(page) for page in pages] == [BUCKETS_PER_PAGE, BUCKETS_PER_PAGE, 5]
    assert [entry for page in pages for entry in page] == [f"e{bucket}" for bucket in range(buckets, 0, -1)]


def test_a_page_token_resumes_the_walk_where_it_stopped(ledger: LedgerContext) -> None:
    _jump_to_bucket(ledger, 1)
    transfers.post_transfers(ledger, [earn(f"old{n}", A, 10) for n in range(5)])
    _jump_to_bucket(ledger, 2 * BUCKETS_PER_PAGE + 8)
    transfers.post_transfers(ledger, [earn(f"new{n}", A, 10) for n in range(2)])
    transfers.post_transfers(ledger, [spend("spent", A, 5)])
    pages = _walk(ledger, A, 4)
    # The newest bucket and the rest of the budget: 3 entries and a token; then a budget of empty buckets (an empty
    # page with a token); then the first bucket's 5 entries, a full page and the last.
    assert pages == [
        ["spent", "new1", "new0"],
        [],
        ["old4", "old3", "old2", "old1"],
        ["old0"],
    ]


def test_an_account_with_no_entries_has_an_empty_statement_and_no_token(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("o1", OTHER, 10)])
    assert _walk(ledger, A, 10) == [[]]
    assert _walk(ledger, OTHER, 10, start_us=to_us(START + timedelta(days=1))) == [[]]


def test_a_new_accounts_walk_starts_and_ends_in_its_own_bucket(ledger: LedgerContext) -> None:
    for bucket in range(1, BUCKETS_PER_PAGE + 3):
        _jump_to_bucket(ledger, bucket)
        transfers.post_transfers(ledger, [earn(f"o{bucket}", OTHER, 1)])
    transfers.post_transfers(ledger, [earn("first", A, 10)])
    with ledger.engine.connect() as conn:
        opened_after_seq = conn.execute(select(accounts.c.opened_after_seq).where(accounts.c.account == A)).scalar_one()
    assert max(_seqs(ledger, OTHER)) <= opened_after_seq < min(_seqs(ledger, A))
    with captured_statements(ledger.engine) as statements:
        assert _walk(ledger, A, 10) == [["first"]]
    # Every statement of the walk reads one bucket (its credits and its debits: one UNION ALL), the account's
    # own: no step reads the others' buckets below it.
    steps = [statement.count("UNION ALL") for statement in statements if "UNION ALL" in statement]
    assert steps and max(steps) == 1, steps


def test_a_windowed_statement_lists_exactly_the_window_across_buckets(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    for bucket in range(1, 2 * BUCKETS_PER_PAGE + 1):
        _jump_to_bucket(ledger, bucket)
        transfers.post_transfers(ledger, [earn(f"e{bucket}", A, 1)])
        clock.advance(days=1)
    start, end = START + timedelta(days=3), START + timedelta(days=BUCKETS_PER_PAGE + 6)
    pages = _walk(ledger, A, 5, to_us(start), to_us(end))
    # Days 3.. before BUCKETS_PER_PAGE + 6 are the entries of buckets 4 .. BUCKETS_PER_PAGE + 6.
    listed = [entry for page in pages for entry in page]
    assert listed == [f"e{bucket}" for bucket in range(BUCKETS_PER_PAGE + 6, 3, -1)]
    assert all(len(page) <= 5 for page in pages)
    # A window's start bounds rows, not buckets: the walk reaches the account's first bucket, the last page empty.
    since = _walk(ledger, A, 50, to_us(START + timedelta(days=2 * BUCKETS_PER_PAGE - 2)))
    assert since == [[f"e{2 * BUCKETS_PER_PAGE}", f"e{2 * BUCKETS_PER_PAGE - 1}"], []]


def test_a_monthly_summary_sums_credits_in_every_bucket(ledger: LedgerContext) -> None:
    for bucket in (1, 3, 2 * BUCKETS_PER_PAGE):
        _jump_to_bucket(ledger, bucket)
        transfers.post_transfers(ledger, [earn(f"e{bucket}", A, 10)])
    summary = reads.get_monthly_summary(ledger, A, START.year, START.month)
    assert summary.earned_points == 30
