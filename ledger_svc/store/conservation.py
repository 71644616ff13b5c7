"""The incremental conservation check's journal side (ADR 0129): each system account's net entries, summed from the
per-block sums stored at sealing plus the transfers of batches not sealed yet, in one statement (one snapshot, so a
seal running meanwhile is counted once)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select, union_all

from ledger_svc.domain.conservation import ConservationSums
from ledger_svc.store.chain import system_nets
from ledger_svc.store.reads import book_totals
from ledger_svc.store.tables import journal_batches, journal_block_sums


def journal_system_nets(conn: Connection) -> dict[str, int]:
    """Each system account's journal entries, net (credits +, debits -): sealed blocks' stored sums plus the tail."""
    unsealed = select(journal_batches.c.batch_id).where(journal_batches.c.block_no.is_(None))
    tail = system_nets(unsealed).subquery("tail")
    nets = union_all(
        select(journal_block_sums.c.account, journal_block_sums.c.net_points),
        select(tail.c.account, tail.c.net_points),
    ).subquery("nets")
    rows = conn.execute(select(nets.c.account, func.sum(nets.c.net_points)).group_by(nets.c.account))
    return {str(account): int(points) for account, points in rows}


def incremental_sums(conn: Connection) -> ConservationSums:
    """Balances and pending holds as the full audit counts them; the journal only as per-account-kind totals: every
    system account against its entries, users as a whole against minus all system entries (each transfer moves
    points between two accounts). Lots and single user accounts are the full audit's."""
    books = book_totals(conn)
    nets = journal_system_nets(conn)
    accounts = set(nets) | set(books.system_balances)
    mismatches = sum(1 for account in accounts if nets.get(account, 0) != books.system_balances.get(account, 0))
    if books.user_balances_points != -sum(nets.values()):
        mismatches += 1
    return books.sums(lot_points=None, journal_mismatches=mismatches)
