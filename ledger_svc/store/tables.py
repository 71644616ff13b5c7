"""The ledger's tables. Instants are UTC microseconds (`*_us`), identical on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    CompoundSelect,
    Computed,
    Date,
    FetchedValue,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
    union_all,
)

from service_kit import leader_lease
from service_kit.accounts import EXPIRY_ACCOUNT, ISSUANCE_ACCOUNT
from service_kit.db import opaque_key

metadata = MetaData()
# An autoincrementing 64-bit key on PostgreSQL that is SQLite's rowid alias there.
Serial = BigInteger().with_variant(Integer(), "sqlite")

# Every credit updates its account and lot rows: room is left on each page on PostgreSQL so the new row version
# fits beside the old one, a HOT update that writes no index entry (ADR 0104). An account row is updated forever,
# a lot mostly on the day it was earned (then it is spent, swept or left alone).

# User accounts, created on first use. balance = points in lots + held points (pending holds).
accounts = Table(
    "accounts",
    metadata,
    Column("account", opaque_key(32), primary_key=True),
    Column("balance_points", BigInteger, nullable=False),
    Column("held_points", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    # The journal's last seq when the row was created, before any entry of the account was written: every entry of
    # the account has a greater seq, so its statement's walk stops at that seq's bucket (ADR 0136). Written only by
    # the insert that creates the row (a value computed once per statement, not per credit); NULL for accounts
    # created before ledger_0013, whose walk goes down to the first bucket.
    Column("opened_after_seq", BigInteger),
    # The last earning day whose lots are all in `lots` (ADR 0137): a lot of a later day is in `recent_lots`. Changed
    # only under the row's lock, by the mover (store/lot_mover.py). A new account starts before every day, so its
    # first lots go to recent_lots; the accounts of ledger_0014 start at the day of its latest lot.
    Column("lots_moved_through", Date, nullable=False, server_default=text("'1970-01-01'")),
    CheckConstraint("balance_points >= 0", name="ck_accounts_balance_not_negative"),
    CheckConstraint("held_points >= 0 AND held_points <= balance_points", name="ck_accounts_held_within_balance"),
    postgresql_with={"fillfactor": 50},
)

# System accounts are split into shards, each changed at most once per transaction (see ADR 0101).
system_balances = Table(
    "system_balances",
    metadata,
    Column("account", String(32), nullable=False),
    Column("shard", SmallInteger, nullable=False),
    Column("balance_points", BigInteger, nullable=False),
    PrimaryKeyConstraint("account", "shard", name="pk_system_balances"),
)

lots = Table(
    "lots",
    metadata,
    Column("lot_id", Serial, primary_key=True, autoincrement=True),
    Column("account", opaque_key(32), nullable=False),
    Column("earned_on", Date, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("credited_points", BigInteger, nullable=False),
    Column("remaining_points", BigInteger, nullable=False),
    Column("expired_points", BigInteger, nullable=False, server_default=text("0")),
    # remaining_points > 0, kept by the database (stored on PostgreSQL; virtual on SQLite, whose ALTER TABLE adds
    # no stored column). No index names it any more (ADR 0133): a column in an index or its predicate makes every
    # update of it non-HOT, and the expiry sweep changes it for every lot it empties.
    Column("has_points", Boolean, Computed("remaining_points > 0", persisted=True), nullable=False),
    UniqueConstraint("account", "expires_at_us", "earned_on", name="uq_lots_key"),
    CheckConstraint("remaining_points >= 0", name="ck_lots_remaining_not_negative"),
    # Every lot, in the sweep's keyset order. Which expired lots still hold points is the range after
    # expiry_watermark plus expiry_requeue, not this index, so emptying a lot writes no index entry (ADR 0133).
    Index("ix_lots_expiring", "expires_at_us", "lot_id"),
    # Half of each page free (ADR 0133; 70 before, ADR 0104): the sweep empties a day's lots, whole pages of them, in
    # one transaction, so every row of a page gets a new version at once and all of them must fit beside the old.
    postgresql_with={"fillfactor": 50},
)

# The lots of recent days, kept day first (ADR 0137): a credit's upsert lands in today's range of the key, which stays
# in memory, where the account-first key of `lots` outgrew it. The same columns and lot ids from the same source
# (the sequence of lots.lot_id on PostgreSQL; explicit ids on SQLite, store/accounts.py), so an id names a lot
# wherever it lives. The mover takes closed days to `lots` with their ids. Which table holds an account's lot is
# decided by accounts.lots_moved_through alone.
recent_lots = Table(
    "recent_lots",
    metadata,
    # Drawn from lots' sequence by the server on PostgreSQL (ledger_0014); given by the store on SQLite.
    Column("lot_id", Serial, primary_key=True, autoincrement=False, server_default=FetchedValue()),
    Column("account", opaque_key(32), nullable=False),
    Column("earned_on", Date, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("credited_points", BigInteger, nullable=False),
    Column("remaining_points", BigInteger, nullable=False),
    Column("expired_points", BigInteger, nullable=False, server_default=text("0")),
    Column("has_points", Boolean, Computed("remaining_points > 0", persisted=True), nullable=False),
    UniqueConstraint("earned_on", "account", "expires_at_us", name="uq_recent_lots_key"),
    CheckConstraint("remaining_points >= 0", name="ck_recent_lots_remaining_not_negative"),
    Index("ix_recent_lots_expiring", "expires_at_us", "lot_id"),
    # Every reader finds an account's lots by account, in both tables alike. The table holds two or three days once
    # the mover runs, so this index stays small enough to stay in memory (ADR 0137, Built).
    Index("ix_recent_lots_account", "account", "expires_at_us", "earned_on"),
    postgresql_with={"fillfactor": 50},
)


def lot_key_columns(table: Table) -> tuple[str, ...]:
    """The columns of a lot table's unique key, in its order (account first in lots, day first in recent_lots): what an
    upsert's ON CONFLICT names."""
    key = next(c for c in table.constraints if isinstance(c, UniqueConstraint) and c.name == f"uq_{table.name}_key")
    return tuple(column.name for column in key.columns)


def in_both(build: Callable[[Table], Select[Any]]) -> CompoundSelect[tuple[Any, ...]]:
    """The same query on lots and on recent_lots, as one: each table's rows found through its own indexes, the
    query's conditions (an account, an expiry range) named inside each branch."""
    return union_all(build(lots), build(recent_lots))


# The columns both lot tables share, in one order: what a reader of every lot selects from each.
LOT_COLUMNS = (
    "lot_id",
    "account",
    "earned_on",
    "expires_at_us",
    "credited_points",
    "remaining_points",
    "expired_points",
)
# Every lot, wherever it lives, for readers: PostgreSQL and SQLite push a query's conditions into both branches, so
# an account's lots are read through each table's account-first index, and a keyset over (expires_at_us, lot_id)
# merges both tables' expiring indexes.
every_lot = union_all(
    select(*[lots.c[name] for name in LOT_COLUMNS]), select(*[recent_lots.c[name] for name in LOT_COLUMNS])
).subquery("every_lot")
# The same in SQL, for the statements written out (pg_holds, pg_hold_batches, pg_expiry): `FROM {EVERY_LOT} AS l`.
_COLUMN_LIST = ", ".join(LOT_COLUMNS)
EVERY_LOT = f"(SELECT {_COLUMN_LIST} FROM lots UNION ALL SELECT {_COLUMN_LIST} FROM recent_lots)"

# How far the expiry sweep has emptied every lot, in (expires_at_us, lot_id) order: one row, absent before the first
# sweep. Only moves forward, and only over batches that all committed (ADR 0133).
expiry_watermark = Table(
    "expiry_watermark",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("lot_id", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_expiry_watermark_one_row"),
)

# Lots refilled from empty (a refund or a released hold into a lot a spend or the sweep emptied): a database trigger
# on lots adds them (migration ledger_0012), the sweep takes them out once it has emptied them under their
# accounts' locks. Lots behind the watermark that hold points are all here.
expiry_requeue = Table(
    "expiry_requeue",
    metadata,
    Column("lot_id", BigInteger, primary_key=True, autoincrement=False),
)

# The statement index's bucket: 2^18 seqs (~262k journal entries). Credits go to random accounts, so an index keyed by
# account first takes each insert on a random leaf, and its leaves outgrew shared buffers (128 MB) at a few million
# entries (ADR 0135). Keyed by the seq's bucket first, only the newest bucket's leaves take inserts: ~15 MB at this
# width, small enough to stay resident beside what else a credit reads; 2^20 stopped fitting once its bucket passed
# ~260k entries. Sized in bytes against shared_buffers, not in transfers: a larger shared_buffers allows a wider
# bucket, and fewer buckets for a sparse account's statement to walk (ADR 0136).
STATEMENT_BUCKET_BITS = 18
# The index's leading expression, written as the statement reads must write it for the planner to match it.
STATEMENT_BUCKET = text(f"(seq >> {STATEMENT_BUCKET_BITS})")
# The journal's last seq: what a new account's opened_after_seq holds. PostgreSQL reads the sequence (one page, no
# table: on a distributed ledger a max over the journal would fan out to every shard); with CACHE 1, as the serial
# column's sequence has, it is at least every seq handed out so far and below every seq handed out later. SQLite has
# one writer at a time: the journal's greatest seq is that.
JOURNAL_LAST_SEQ = {
    "postgresql": "(SELECT coalesce(pg_sequence_last_value('transfers_seq_seq'), 0))",
    "sqlite": "(SELECT coalesce(max(seq), 0) FROM transfers)",
}

# ix_transfers_debit's predicate; a query can use the index only if its WHERE implies this.
ISSUANCE_LEFT_OUT = text(f"debit_account <> '{ISSUANCE_ACCOUNT}'")
# ix_transfers_credit's predicate, likewise (ADR 0130).
EXPIRY_LEFT_OUT = text(f"credit_account <> '{EXPIRY_ACCOUNT}'")

# The journal: one row per posted transfer; a batch of rows is one block of the hash chain.
transfers = Table(
    "transfers",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("transfer_id", opaque_key(128), nullable=False, unique=True),
    Column("batch_id", BigInteger, nullable=False),
    Column("debit_account", opaque_key(32), nullable=False),
    Column("credit_account", opaque_key(32), nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    Column("code", SmallInteger, nullable=False),
    Column("reference", String(256), nullable=False),
    Column("co2e_grams", BigInteger, nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("earned_at_us", BigInteger, nullable=False),
    Column("posted_at_us", BigInteger, nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("debit_balance_after", BigInteger),
    Column("credit_balance_after", BigInteger),
    Column("refund_of", String(128)),
    CheckConstraint("amount_points > 0", name="ck_transfers_amount_positive"),
    # Every earn debits system:issuance: its entries were one hot spot at the right end of this index, written by
    # every credit and read by nothing that needs them (ADR 0105). Statements and monthly sums name the predicate
    # (store/statement.py, store/reads.py).
    Index("ix_transfers_debit", "debit_account", "seq", postgresql_where=ISSUANCE_LEFT_OUT),
    # Every expiry credits system:expiry, one entry per emptied lot: the same hot spot, left out alike (ADR 0130).
    # Bucketed by seq range first (ADR 0136): a credit inserts into the newest bucket's leaves only, and a statement
    # walks the account's buckets newest first (store/statement.py).
    Index("ix_transfers_credit", STATEMENT_BUCKET, "credit_account", "seq", postgresql_where=EXPIRY_LEFT_OUT),
    Index(
        "ix_transfers_refund_of",
        "refund_of",
        postgresql_where=text("refund_of IS NOT NULL"),
        sqlite_where=text("refund_of IS NOT NULL"),
    ),
    # Sealing sums each batch's system-account entries (journal_block_sums): batch ids grow with time, so every
    # insert lands at the index's right edge (ADR 0129).
    Index("ix_transfers_batch", "batch_id"),
)

# Which lots a transfer took (side D) or filled (side C): a refund restores exactly these. An earn's one lot is
# implied by the transfer and has no row (ADR 0106; journal.load_postings).
transfer_lots = Table(
    "transfer_lots",
    metadata,
    Column("transfer_id", String(128), nullable=False),
    Column("side", String(1), nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("lot_id", BigInteger, nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    PrimaryKeyConstraint("transfer_id", "side", "position", name="pk_transfer_lots"),
)

holds = Table(
    "holds",
    metadata,
    Column("hold_id", String(128), primary_key=True),
    Column("account", String(32), nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("committed_points", BigInteger, nullable=False),
    Column("credit_account", String(32), nullable=False),
    Column("code", SmallInteger, nullable=False),
    Column("reference", String(256), nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("resolved_at_us", BigInteger),
    Index("ix_holds_account_state", "account", "state"),
    Index(
        "ix_holds_pending_expiry",
        "expires_at_us",
        postgresql_where=text("state = 1"),
        sqlite_where=text("state = 1"),
    ),
)

hold_lots = Table(
    "hold_lots",
    metadata,
    Column("hold_id", String(128), nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("lot_id", BigInteger, nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    PrimaryKeyConstraint("hold_id", "position", name="pk_hold_lots"),
)

# One row per committed batch; sealing chains it into a block (block_no, prev_hash, block_hash).
journal_batches = Table(
    "journal_batches",
    metadata,
    Column("batch_id", Serial, primary_key=True, autoincrement=True),
    Column("entries_count", Integer, nullable=False),
    Column("entries_hash", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("block_no", BigInteger, unique=True),
    Column("prev_hash", String(64)),
    Column("block_hash", String(64)),
    Index(
        "ix_journal_batches_unsealed",
        "batch_id",
        postgresql_where=text("block_no IS NULL"),
        sqlite_where=text("block_no IS NULL"),
    ),
)

# Each sealed block's net change per system account (credits +, debits -), summed from its transfers when it was
# sealed: the incremental conservation check adds these up instead of reading the journal (ADR 0129). A block
# without system entries has no row.
journal_block_sums = Table(
    "journal_block_sums",
    metadata,
    Column("batch_id", BigInteger, nullable=False),
    Column("account", String(32), nullable=False),
    Column("net_points", BigInteger, nullable=False),
    PrimaryKeyConstraint("batch_id", "account", name="pk_journal_block_sums"),
)

chain_head = Table(
    "chain_head",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("last_block_no", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

# The scheduler's leader lease, one row per lease name: the replica whose lease has not expired runs the jobs
# (ADR 0108). The row exists from the migration on, so taking the lease is one conditional UPDATE.
job_leases = leader_lease.lease_table(metadata)

# One row per scheduled job and period (a China day or a month): its state, progress and last outcome.
job_runs = Table(
    "job_runs",
    metadata,
    Column("job", String(32), nullable=False),
    Column("period", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    Column("finished_at_us", BigInteger, nullable=False),
    Column("items", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("batches", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("holder", String(128), nullable=False),
    Column("error", Text, nullable=False),
    PrimaryKeyConstraint("job", "period", name="pk_job_runs"),
    Index("ix_job_runs_updated", "updated_at_us"),
)

# One row per closed settlement period (a month): the last journal block it includes and its figures as stored at
# the close, never updated (ADR 0110). The primary key makes a second close of the month fail.
closed_periods = Table(
    "closed_periods",
    metadata,
    Column("period", String(7), primary_key=True),
    Column("last_block_no", BigInteger, nullable=False),
    Column("closed_at_us", BigInteger, nullable=False),
    Column("figures_json", Text, nullable=False),
)
