"""The statement: an account's journal entries, newest first, a page at a time. The credit side walks
ix_transfers_credit's buckets of seq range newest first, keyset within a bucket, and never more than a budget of
buckets per page nor below the account's first entry (ADR 0136); the debit side reads ix_transfers_debit by keyset
over the same seq range (ADR 0116)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql

from ledger_svc.store.tables import (
    EXPIRY_LEFT_OUT,
    ISSUANCE_LEFT_OUT,
    JOURNAL_LAST_SEQ,
    STATEMENT_BUCKET_BITS,
    accounts,
    transfers,
)
from service_kit.accounts import EXPIRY_ACCOUNT, ISSUANCE_ACCOUNT, is_system_account

# Buckets a page walks at most. A full page of an active account stops in its first bucket or two; an account with
# fewer entries than a page below the cursor would walk every bucket down to its first entry's, one index descent
# each, as many as the journal has buckets. Past the budget the page comes back short, with a token that resumes the
# walk where it stopped (AIP-158: a page may hold fewer entries than asked, and a token means more may follow). The
# budget keeps a sparse account's page to a few hundred buffer hits, and still lets most accounts' whole statement at
# today's journal sizes take one or two pages (ADR 0136).
BUCKETS_PER_PAGE = 16

# ix_transfers_credit's leading expression as the planner must see it to use the index (on both databases): the
# width written out, not bound as a parameter.
seq_bucket = transfers.c.seq.op(">>", return_type=BigInteger)(literal_column(str(STATEMENT_BUCKET_BITS)))
_ACCOUNT = bindparam("account", type_=transfers.c.credit_account.type)


class StatementRow(NamedTuple):  # one per entry of a page (docs/adr/0008-per-item-values-are-named-tuples.md)
    seq: int
    transfer_id: str
    code: int
    amount_points: int  # signed: + credit to the account, - debit
    counterparty_account: str
    posted_at_us: int
    reference: str
    co2e_grams: int
    balance_after_points: int


@dataclass(frozen=True)
class StatementSlice:
    rows: list[StatementRow]  # newest first, at most the limit asked for
    # Set when the walk stopped at its budget above the account's first entry with fewer rows than the limit: the
    # entries below this seq are not read yet (the next page starts there). None when nothing remains unread below.
    unread_before_seq: int | None


@dataclass(frozen=True)
class Filters:
    codes: list[int]
    start_us: int  # 0: unbounded
    end_us: int  # 0: unbounded


def bucket_of(seq: int) -> int:
    return seq >> STATEMENT_BUCKET_BITS


def statement(
    conn: Connection, account: str, limit: int, before_seq: int | None, codes: list[int], start_us: int, end_us: int
) -> StatementSlice:
    """Up to `limit` entries before `before_seq` (None: the newest), newest first. start_us/end_us bound posted_at
    (0: unbounded): they filter rows, not buckets, so a window far in the past is reached page by page."""
    dialect = conn.dialect.name
    filters = Filters(codes, start_us, end_us)
    rows: list[StatementRow] = []
    span = None
    if before_seq is None:
        # Most pages read are an account's first, and an active account fills it from the newest bucket: that is
        # tried first in one statement that finds the newest bucket itself.
        rows = _read(conn, newest_bucket_query(dialect, account, limit, filters), account)
        if len(rows) >= limit:
            return StatementSlice(rows, None)
        span = entry_span(conn, account)
        if span is None:
            return StatementSlice([], None)
        before_seq = span[1] + 1
        if not rows or bucket_of(rows[0].seq) != bucket_of(span[1]):
            rows = []  # the walk starts over from the bucket of the journal's last seq as read now
    top = bucket_of(before_seq - 1)
    # The cursor's bucket alone first: an active account's page is full there, and more buckets in the same
    # statement would each be read for a page. An entry's seq is at least 1: the first bucket holds seq 0 too.
    start = max(top << STATEMENT_BUCKET_BITS, 1)
    if not rows:
        rows = _read(conn, page_query(dialect, account, limit, [top], start, before_seq, filters), account)
        if len(rows) >= limit:
            return StatementSlice(rows, None)
    span = span or entry_span(conn, account)
    first_seq = 1 if span is None else span[0]
    if start <= first_seq:
        return StatementSlice(rows, None)
    # The rest of the budget in one statement, a page at most from each bucket, down to the account's first entry.
    bottom = max(bucket_of(first_seq), top - BUCKETS_PER_PAGE + 1)
    end, start = start, max(bottom << STATEMENT_BUCKET_BITS, first_seq)
    if bottom < top:
        buckets = list(range(top - 1, bottom - 1, -1))
        rows += _read(conn, page_query(dialect, account, limit - len(rows), buckets, start, end, filters), account)
        if len(rows) >= limit:
            return StatementSlice(rows, None)
    return StatementSlice(rows, start if start > first_seq else None)


def _read(conn: Connection, step: Step, account: str) -> list[StatementRow]:
    # Fetched in one call: iterating the result fetched row by row, a call into SQLAlchemy and psycopg for each.
    return [_row(row, account) for row in conn.execute(step.shape, step.values).all()]


def entry_span(conn: Connection, account: str) -> tuple[int, int] | None:
    """(the least seq any entry of the account can have, the journal's last seq), or None for a user account that
    has no row, hence no entry. A system account has no row: its entries may start at the journal's first."""
    last_seq, opened_after_seq = conn.execute(_span_query(conn.dialect.name), {"account": account}).one()
    if opened_after_seq is None:
        if not is_system_account(account):
            return None
        opened_after_seq = 0
    return int(opened_after_seq) + 1, int(last_seq)


@functools.cache
def _span_query(dialect: str) -> Select[tuple[Any, ...]]:
    opened = select(func.coalesce(accounts.c.opened_after_seq, 0)).where(
        accounts.c.account == bindparam("account", type_=accounts.c.account.type)
    )
    return select(text(JOURNAL_LAST_SEQ[dialect]), opened.scalar_subquery())


def bucket_walk(first_seq: int, last_seq: int) -> Any:
    """The buckets from first_seq's to last_seq's, one row each (a recursive CTE, on both databases): joined on
    seq_bucket with an account's credits, each bucket is one descent of ix_transfers_credit."""
    buckets = select(literal(bucket_of(first_seq), BigInteger()).label("bucket")).cte("buckets", recursive=True)
    following = select((buckets.c.bucket + 1).label("bucket")).where(buckets.c.bucket < bucket_of(last_seq))
    return buckets.union_all(following)


class Step(NamedTuple):
    """A statement to run and its values, kept apart: the shape is built once and SQLAlchemy keeps its compiled form
    and cache key on it, where binding the values into a copy (`params`) walked the whole nested select again on
    every page. `bound()` is the copy, for a test that reads the plan."""

    shape: Select[tuple[Any, ...]]
    values: dict[str, Any]

    def bound(self) -> Select[tuple[Any, ...]]:
        return self.shape.params(self.values)


def page_query(
    dialect: str, account: str, limit: int, buckets: list[int], start_seq: int, end_seq: int, filters: Filters
) -> Step:
    """One step of the walk: the account's credits in `buckets` (newest first) and its debits, with start_seq <= seq
    < end_seq, the newest `limit` of them."""
    if dialect == "postgresql" and len(buckets) > 1:
        # One subquery a bucket planned once (a LATERAL over the list), where a UNION of one each cost PostgreSQL
        # ~0.3 ms of planning a bucket.
        shape = _page_shape(0, *_kinds(account, filters))
        values: dict[str, Any] = {"buckets": buckets}
    else:
        shape = _page_shape(len(buckets), *_kinds(account, filters))
        values = {f"bucket_{n}": bucket for n, bucket in enumerate(buckets)}
    values |= {"start_seq": start_seq, "end_seq": end_seq}
    return Step(shape, _values(account, limit, filters) | values)


def newest_bucket_query(dialect: str, account: str, limit: int, filters: Filters) -> Step:
    """The account's newest `limit` entries in the journal's newest bucket, which the statement finds itself."""
    return Step(_newest_shape(dialect, *_kinds(account, filters)), _values(account, limit, filters))


def _kinds(account: str, filters: Filters) -> tuple[bool, bool, bool, bool, bool]:
    return (
        account == ISSUANCE_ACCOUNT,
        account == EXPIRY_ACCOUNT,
        bool(filters.codes),
        bool(filters.start_us),
        bool(filters.end_us),
    )


def _values(account: str, limit: int, filters: Filters) -> dict[str, Any]:
    return {
        "account": account,
        "page_limit": limit,
        "codes": filters.codes,
        "start_us": filters.start_us,
        "end_us": filters.end_us,
    }


def _row(row: Any, account: str) -> StatementRow:
    # Unpacked by position (the order of _COLUMNS), which costs a page's rows a fraction of eleven attribute look-ups
    # each.
    (
        seq,
        transfer_id,
        code,
        amount,
        debit_account,
        credit_account,
        posted_at_us,
        reference,
        co2e,
        debit_after,
        credit_after,
    ) = row
    credit = credit_account == account
    return StatementRow(
        seq=seq,
        transfer_id=transfer_id,
        code=code,
        amount_points=amount if credit else -amount,
        counterparty_account=debit_account if credit else credit_account,
        posted_at_us=posted_at_us,
        reference=reference,
        co2e_grams=co2e,
        balance_after_points=(credit_after if credit else debit_after) or 0,
    )


# Building the statement's query costs SQLAlchemy more Python than PostgreSQL spends answering it (the column
# proxies of nested selects): it is built once per shape, and its values are bound at execution.
@functools.lru_cache(maxsize=128)
def _page_shape(
    buckets: int, issuance: bool, expiry: bool, coded: bool, started: bool, ended: bool
) -> Select[tuple[Any, ...]]:
    """Each bucket's newest `page_limit` credits and the newest `page_limit` debits in [start_seq, end_seq), merged:
    each part reads its index backwards and stops after a page, so a step costs a page per bucket it names, not the
    account's history (an OR of the two sides made PostgreSQL fetch every entry of the account, ADR 0116). The
    buckets are parameters bucket_0, bucket_1, ..., one subquery each; with `buckets` 0, on PostgreSQL, one array
    parameter `buckets` and one subquery LATERAL to it."""
    in_range = and_(
        transfers.c.seq >= bindparam("start_seq", type_=BigInteger()),
        transfers.c.seq < bindparam("end_seq", type_=BigInteger()),
    )
    if buckets:
        in_bucket = [seq_bucket == bindparam(f"bucket_{n}", type_=BigInteger()) for n in range(buckets)]
        return _merged(in_bucket, in_range, issuance, expiry, coded, started, ended)
    walked = func.unnest(bindparam("buckets", type_=postgresql.ARRAY(BigInteger()))).table_valued("bucket")
    walked = walked.render_derived(name="walked")
    credits = _credits_where(seq_bucket == walked.c.bucket, in_range, expiry)
    per_bucket = _newest_first(select(*_COLUMNS).where(credits), coded, started, ended).lateral("bucket_credits")
    credit_side = select(per_bucket).select_from(walked.join(per_bucket, true()))
    debit_side = _side(_debits_where(in_range, issuance), coded, started, ended)
    both = union_all(credit_side, debit_side).subquery("entries")
    return select(both).order_by(both.c.seq.desc()).limit(bindparam("page_limit", type_=Integer()))


@functools.lru_cache(maxsize=32)
def _newest_shape(
    dialect: str, issuance: bool, expiry: bool, coded: bool, started: bool, ended: bool
) -> Select[tuple[Any, ...]]:
    """The journal's newest bucket, from its last seq: one bucket's credits and its debits, as _page_shape's."""
    newest_bucket: Any = literal_column(f"({JOURNAL_LAST_SEQ[dialect]} >> {STATEMENT_BUCKET_BITS})")
    in_range = transfers.c.seq >= newest_bucket.op("<<")(literal_column(str(STATEMENT_BUCKET_BITS)))
    return _merged([seq_bucket == newest_bucket], in_range, issuance, expiry, coded, started, ended)


def _credits_where(in_bucket: Any, in_range: Any, expiry: bool) -> Any:
    credits = and_(in_bucket, transfers.c.credit_account == _ACCOUNT, in_range)
    if expiry:
        return credits
    # Said so the planner may use ix_transfers_credit, which leaves system:expiry's credits out (ADR 0130); the
    # expiry account's own statement reads the journal's seq range newest first (an operator's view).
    return and_(credits, EXPIRY_LEFT_OUT)


def _debits_where(in_range: Any, issuance: bool) -> Any:
    # A transfer from an account to itself is on the credit side only, so no entry is listed twice.
    debits = and_(transfers.c.debit_account == _ACCOUNT, transfers.c.credit_account != _ACCOUNT, in_range)
    if issuance:
        return debits
    # Always true here, and said so the planner may use ix_transfers_debit, which leaves issuance out (ADR 0105).
    # Issuance's own statement reads the journal's seq range newest first (nearly every one is an earn).
    return and_(debits, ISSUANCE_LEFT_OUT)


def _merged(
    in_bucket: list[Any], in_range: Any, issuance: bool, expiry: bool, coded: bool, started: bool, ended: bool
) -> Select[tuple[Any, ...]]:
    sides = [_side(_credits_where(bucket, in_range, expiry), coded, started, ended) for bucket in in_bucket]
    sides.append(_side(_debits_where(in_range, issuance), coded, started, ended))
    both = union_all(*sides).subquery("entries")
    return select(both).order_by(both.c.seq.desc()).limit(bindparam("page_limit", type_=Integer()))


# What a statement row shows, and no more: the journal's other columns (metadata, fingerprint, ...) would travel and
# be decoded for every row of every page.
_COLUMNS = (
    transfers.c.seq,
    transfers.c.transfer_id,
    transfers.c.code,
    transfers.c.amount_points,
    transfers.c.debit_account,
    transfers.c.credit_account,
    transfers.c.posted_at_us,
    transfers.c.reference,
    transfers.c.co2e_grams,
    transfers.c.debit_balance_after,
    transfers.c.credit_balance_after,
)


def _side(where: Any, coded: bool, started: bool, ended: bool) -> Select[tuple[Any, ...]]:
    """One part's newest `page_limit` entries, wrapped so that SQLite accepts its ORDER BY and LIMIT inside a
    UNION."""
    return select(_newest_first(select(*_COLUMNS).where(where), coded, started, ended).subquery())


def _newest_first(query: Select[tuple[Any, ...]], coded: bool, started: bool, ended: bool) -> Select[tuple[Any, ...]]:
    """The query with the statement's filters, its newest `page_limit` rows."""
    if coded:
        query = query.where(transfers.c.code.in_(bindparam("codes", type_=transfers.c.code.type, expanding=True)))
    if started:
        query = query.where(transfers.c.posted_at_us >= bindparam("start_us", type_=BigInteger()))
    if ended:
        query = query.where(transfers.c.posted_at_us < bindparam("end_us", type_=BigInteger()))
    return query.order_by(transfers.c.seq.desc()).limit(bindparam("page_limit", type_=Integer()))
