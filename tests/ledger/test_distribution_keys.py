"""The Citus path (docs/scale-plan.md, section 3): every statement of the ledger's hot paths on PostgreSQL (earn
credits, transfers, hold / commit / release, balance reads) names the distribution column of each distributed table
it touches, except the statements the plan lists as work to do before the move, each for its stated reason."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.service import holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from tests.distribution_keys import captured_statements, distributed_tables, filters_by, touched, unkeyed
from tests.ledger.ledger_support import account_number, earn, spend

pytestmark = pytest.mark.postgres

# What the plan says these statements filter by today instead, and the change that makes them name their key.
PLANNED = {
    "transfers": ("transfer_id", "the idempotency probe by transfer id: the transfer_ids table (scale plan, ledger)"),
    "holds": ("hold_id", "look-ups by hold id alone: hold ids that encode their account (scale plan, step 2)"),
}
# Background statements that read across accounts on purpose, each once per sealing (a quarter second), never per
# request: on a distributed ledger they fan out once per seal, not once per call (ADR 0129).
BACKGROUND = {"INSERT INTO journal_block_sums": "the sealer sums each new block's system-account entries"}
# Columns the plan adds (the rows are written with their hold or transfer): until they exist, every statement on
# these tables is planned work, and the test says so the day one is added.
NEW_COLUMNS = {"hold_lots": "account", "transfer_lots": "account"}


def _hot_paths(ledger: LedgerContext) -> None:
    accounts = [account_number(n) for n in range(1, 4)]
    transfers.post_credit_columns(ledger, [earn(f"earn-{n}", a, 1_000) for n, a in enumerate(accounts)])
    transfers.post_transfers(ledger, [earn("earn-general", accounts[0], 100)])
    transfers.post_transfers(ledger, [spend("redeem-1", accounts[0], 50)])
    holds.hold(ledger, HoldRequest("hold-1", accounts[1], 300))
    holds.commit_hold(ledger, "hold-1", 300, "system:redemption")
    holds.hold(ledger, HoldRequest("hold-2", accounts[2], 300))
    holds.release_hold(ledger, "hold-2")
    reads.get_balance(ledger, accounts[0])


def test_the_hot_statements_name_their_distribution_keys(pg_ledger: LedgerContext) -> None:
    tables = distributed_tables("ledger")
    with captured_statements(pg_ledger.engine) as statements:
        _hot_paths(pg_ledger)
    assert {"accounts", "lots", "holds", "transfers", "system_balances"} <= touched(statements, tables)
    columns = {table: {c["name"] for c in inspect(pg_ledger.engine).get_columns(table)} for table in NEW_COLUMNS}
    for table, column in NEW_COLUMNS.items():
        assert column not in columns[table], f"{table}.{column} exists now: its statements must name it"
    unexpected = [
        found
        for found in unkeyed(statements, tables)
        if found.table not in NEW_COLUMNS
        and not any(found.statement.startswith(start) for start in BACKGROUND)
        and not (found.table in PLANNED and filters_by(found.statement, found.table, PLANNED[found.table][0]))
    ]
    assert not unexpected, "statements that would fan out to every shard:\n" + "\n".join(
        f"{found.table} (by {found.column}): {found.statement}" for found in unexpected
    )


@pytest.mark.parametrize(
    ("statement", "fans_out"),
    [
        ("SELECT remaining_points FROM lots WHERE lots.account = %(a)s AND lot_id = %(id)s", False),
        ("UPDATE lots SET remaining_points = 0 WHERE lots.lot_id = %(id)s", True),
        ("SELECT * FROM lots AS l JOIN accounts AS a ON a.account = l.account WHERE a.account = ANY(%(x)s)", False),
        ("SELECT * FROM lots WHERE account > %(a)s", True),
        ("INSERT INTO lots (account, earned_on) VALUES (%(a)s, %(d)s)", False),
        ("INSERT INTO transfers (transfer_id) VALUES (%(t)s)", True),
        ("SELECT 1 FROM journal_batches", False),
    ],
)
def test_the_check_tells_a_keyed_statement_from_one_that_fans_out(statement: str, fans_out: bool) -> None:
    assert bool(unkeyed([statement], distributed_tables("ledger"))) is fans_out
