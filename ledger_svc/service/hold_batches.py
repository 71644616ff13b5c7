"""Batched holds: HoldBatch, CommitHolds and ReleaseHolds (ADR 0132).

Each call is one transaction: it locks every account its items touch (in account order, as every ledger transaction
does, so batches never deadlock each other), reads the holds and lots once, then decides the items one after
another in request order in a Book, with the unary calls' own checks and moves. An item that is refused is rolled
back in the Book alone and answered as a FAILED outcome; the rest is written in a few statements at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection

from ledger_svc.domain.book import Book
from ledger_svc.domain.holds import (
    MAX_BATCH_HOLDS,
    CommitItem,
    Hold,
    HoldOutcome,
    HoldRequest,
    HoldState,
    ItemStatus,
    Refused,
    check_repeated_commit,
    checked_commit_amount,
    reused_key,
)
from ledger_svc.domain.journal import entries_hash, entry_of
from ledger_svc.domain.names import require_id
from ledger_svc.domain.refusal import Refusal
from ledger_svc.domain.transfers import ItemResult, Posting, Status
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.holds import check_commit_request, check_hold_request, move_held_points
from ledger_svc.service.transfers import write_book
from ledger_svc.store import accounts as account_store
from ledger_svc.store import holds as hold_store
from ledger_svc.store import journal, pg_hold_batches, pg_holds
from service_kit.accounts import is_system_account
from service_kit.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound

Item = TypeVar("Item", HoldRequest, CommitItem)


def hold_batch(ctx: LedgerContext, items: Sequence[HoldRequest | Refused]) -> list[HoldOutcome]:
    _check_size("holds", items)
    checked = [_checked(item, lambda request: check_hold_request(ctx, request)) for item in items]
    return _run(ctx, lambda conn: _hold_batch(conn, ctx, checked))


def commit_holds(ctx: LedgerContext, items: Sequence[CommitItem]) -> list[HoldOutcome]:
    _check_size("commits", items)
    checked = [
        _checked(item, lambda c: check_commit_request(ctx, c.hold_id, c.amount_points, c.credit_account))
        for item in items
    ]
    return _run(ctx, lambda conn: _resolve_batch(conn, ctx, checked, commit=True))


def release_holds(ctx: LedgerContext, hold_ids: Sequence[str]) -> list[HoldOutcome]:
    _check_size("releases", hold_ids)
    checked = [_checked(CommitItem(hold_id, 0, ""), lambda c: require_id("hold_id", c.hold_id)) for hold_id in hold_ids]
    return _run(ctx, lambda conn: _resolve_batch(conn, ctx, checked, commit=False))


def _check_size(field: str, items: Sequence[object]) -> None:
    if not items:
        raise InvalidArgument(field, "at least one item is required")
    if len(items) > MAX_BATCH_HOLDS:
        raise InvalidArgument(
            field, f"at most {MAX_BATCH_HOLDS} items per call, got {len(items)}", reason="BATCH_TOO_LARGE"
        )


def _checked(item: Item | Refused, check: Callable[[Item], None]) -> Item | Refused:
    if isinstance(item, Refused):
        return item
    try:
        check(item)
    except DomainError as error:
        return Refused(item.hold_id, error)
    return item


def _run(ctx: LedgerContext, work: Callable[[Connection], list[HoldOutcome]]) -> list[HoldOutcome]:
    outcomes = ctx.transaction(work)
    if any(o.result is not None and o.result.status is Status.POSTED for o in outcomes):
        ctx.seal_soon()
    return outcomes


def _hold_batch(conn: Connection, ctx: LedgerContext, items: list[HoldRequest | Refused]) -> list[HoldOutcome]:
    now_us = ctx.now_us()
    requests = [item for item in items if not isinstance(item, Refused)]
    held = {request.account for request in requests}
    credited = {r.commit_to_account for r in requests if r.commit_to_account}
    users = account_store.lock_users(conn, held | {name for name in credited if not is_system_account(name)}, now_us)
    ids = {request.hold_id for request in requests}
    if _on_postgresql(ctx):
        holding = sorted(name for name in held if users[name].held_points)  # only they can have timed-out holds
        for account, points in (pg_holds.release_expired(conn, holding, now_us) if holding else {}).items():
            users[account].held_points -= points  # as the statement wrote it: the snapshot below starts from here
        before = account_store.snapshot(users)
        pg_hold_batches.load_spendable_lots(conn, {name: users[name] for name in held}, now_us)
        taken = pg_hold_batches.taken_ids(conn, ids)
        known = pg_hold_batches.load_holds(conn, taken) if taken else {}
        posted = journal.load_postings(conn, taken) if taken else {}
    else:
        before = account_store.snapshot(users)  # the release changes the accounts in memory only
        hold_store.release_expired_holds(conn, users, held, now_us)
        account_store.load_spendable_lots(conn, {name: users[name] for name in held}, now_us)
        posted = journal.load_postings(conn, ids)
        known = {hold_id: _loaded(conn, hold_id) for hold_id in hold_store.existing_hold_ids(conn, ids)}
    batch = _Batch(Book(now_us, users), posted, known)
    outcomes = []
    for item in items:
        if isinstance(item, Refused):
            outcomes.append(HoldOutcome.failed(item.hold_id, item.error))
            continue
        outcomes.append(batch.decide(item.hold_id, partial(batch.place, item)))
    _write(conn, ctx, batch, before)
    return outcomes


def _resolve_batch(
    conn: Connection, ctx: LedgerContext, items: list[CommitItem | Refused], *, commit: bool
) -> list[HoldOutcome]:
    now_us = ctx.now_us()
    commits = [item for item in items if not isinstance(item, Refused)]
    fast = _on_postgresql(ctx)
    ids = [c.hold_id for c in commits]
    accounts = pg_hold_batches.hold_accounts(conn, ids) if fast else hold_store.hold_accounts(conn, ids)
    credited = {c.credit_account for c in commits if commit and not is_system_account(c.credit_account)}
    users = account_store.lock_users(conn, set(accounts.values()) | credited, now_us)
    before = account_store.snapshot(users)
    # Read under the locks: a hold resolved meanwhile is read resolved.
    if fast:
        known = pg_hold_batches.load_holds(conn, accounts)
    else:
        known = {hold_id: _loaded(conn, hold_id) for hold_id in accounts}
    committed = [h.hold_id for h in known.values() if h.state is HoldState.COMMITTED]
    posted = journal.load_postings(conn, committed) if committed else {}
    batch = _Batch(Book(now_us, users), posted, known)
    outcomes = []
    for item in items:
        if isinstance(item, Refused):
            outcomes.append(HoldOutcome.failed(item.hold_id, item.error))
            continue
        if commit:
            outcomes.append(batch.decide(item.hold_id, partial(batch.commit_known, item)))
        else:
            outcomes.append(batch.decide(item.hold_id, partial(batch.release_known, item.hold_id)))
    _write(conn, ctx, batch, before)
    return outcomes


def _on_postgresql(ctx: LedgerContext) -> bool:
    """Whether batches read and write with PostgreSQL's array statements (as unary holds take ADR 0103's path)."""
    return ctx.set_based_holds and ctx.engine.dialect.name == "postgresql"


def _write(conn: Connection, ctx: LedgerContext, batch: _Batch, before: dict[str, tuple[int, int]]) -> None:
    """Writes what the batch decided: in one statement on PostgreSQL when its lots are all known and every commit
    goes to a system account; else with the general statements."""
    book, now_us = batch.book, batch.book.now_us
    users = book.accounts
    changes = [
        (users[key.account].lots[key].lot_id, key.account, delta.remaining_points)
        for key, delta in sorted(book.lot_deltas.items())
        if delta.remaining_points or delta.credited_points
    ]
    portions = [p for hold in batch.placed for p in hold.lots] + [
        p for posting in batch.postings for p in (*posting.debit_lots, *posting.credit_lots)
    ]
    simple = (
        all(lot_id is not None for lot_id, _, _ in changes)
        and all(portion.lot_id is not None for portion in portions)
        and not any(delta.credited_points for delta in book.lot_deltas.values())
    )
    if _on_postgresql(ctx) and simple and all(not posting.credit_lots for posting in batch.postings):
        digest = entries_hash(entry_of(posting) for posting in batch.postings)[0] if batch.postings else ""
        changed = [u for name, u in sorted(users.items()) if before.get(name) != (u.balance_points, u.held_points)]
        pg_hold_batches.write(
            conn,
            pg_hold_batches.BatchWrites(
                lot_changes=changes,  # type: ignore[arg-type]
                placed=batch.placed,
                resolved=list(batch.resolved.values()),
                postings=batch.postings,
                digest=digest,
                accounts=changed,
                system_deltas=book.system_deltas,
                shard=account_store.shard_of_this_thread(),
                now_us=now_us,
            ),
        )
        return
    # A lot this batch created (points committed to a user account) and emptied again (held by a later item) has no
    # net change to write, but its portions name it: it is stored empty, as the same items one by one leave it.
    unstored = {p.key for p in portions if p.lot_id is None and users[p.key.account].lots[p.key].lot_id is None}
    account_store.store_empty_lots(conn, users, unstored)
    write_book(conn, book, users, before, batch.postings, now_us)
    for portion in portions:
        if portion.lot_id is None:
            portion.lot_id = users[portion.key.account].lots[portion.key].lot_id
    hold_store.insert_holds(conn, batch.placed, now_us)
    hold_store.resolve_holds(conn, list(batch.resolved.values()), now_us)


def _loaded(conn: Connection, hold_id: str) -> Hold:
    found = hold_store.load_hold(conn, hold_id)
    assert found is not None, "holds are never deleted"
    return found


class _Batch:
    """The items of one batch decided in order over one Book: what each placed, resolved and posted."""

    def __init__(self, book: Book, posted: dict[str, Posting], known: dict[str, Hold]) -> None:
        self.book = book
        self.posted = posted  # transfers by id: stored before, or posted by an earlier item
        self.known = known  # holds by id: stored before, or placed by an earlier item
        self.placed: list[Hold] = []
        self.resolved: dict[str, Hold] = {}  # stored holds resolved by this batch
        self.postings: list[Posting] = []

    def decide(self, hold_id: str, work: Callable[[], HoldOutcome]) -> HoldOutcome:
        """The item's outcome; a refused item's changes to the Book are undone."""
        mark = self.book.mark()
        try:
            return work()
        except DomainError as error:
            self.book.rollback(mark)
            return HoldOutcome.failed(hold_id, error)

    def place(self, request: HoldRequest) -> HoldOutcome:
        """As Hold (and with commit_to_account, its commit in the same call)."""
        now_us = self.book.now_us
        created = request.pending_hold(now_us)
        existing = self.known.get(request.hold_id)
        if existing is not None:
            if existing.fingerprint != created.fingerprint:
                raise reused_key("hold_id", request.hold_id)
            result = self._commit(existing, 0, request.commit_to_account) if request.commit_to_account else None
            return HoldOutcome(request.hold_id, ItemStatus.REPEATED, existing, result)
        if request.hold_id in self.posted:
            raise reused_key("hold_id", request.hold_id)
        try:
            created.lots = self.book.take_lots(request.account, request.amount_points, held=True)
        except Refusal as refusal:
            raise FailedPrecondition(refusal.reason, refusal.message, {"account": request.account}) from None
        result = self._commit(created, 0, request.commit_to_account) if request.commit_to_account else None
        self.known[created.hold_id] = created
        self.placed.append(created)
        return HoldOutcome(request.hold_id, ItemStatus.DONE, created, result)

    def commit_known(self, item: CommitItem) -> HoldOutcome:
        """As CommitHold."""
        current = self._stored(item.hold_id)
        result = self._commit(current, item.amount_points, item.credit_account)
        if result.status is not Status.POSTED:
            return HoldOutcome(item.hold_id, ItemStatus.REPEATED, current, result)
        self.resolved[current.hold_id] = current
        return HoldOutcome(item.hold_id, ItemStatus.DONE, current, result)

    def release_known(self, hold_id: str) -> HoldOutcome:
        """As ReleaseHold."""
        current = self._stored(hold_id)
        if current.state is HoldState.COMMITTED:
            raise FailedPrecondition("HOLD_COMMITTED", f"hold {hold_id!r} was committed", {"hold_id": hold_id})
        if current.state is not HoldState.PENDING:
            return HoldOutcome(hold_id, ItemStatus.REPEATED, current)
        now_us = self.book.now_us
        self.book.release_held(current.account, current.lots, current.amount_points)
        expired = current.state_at(now_us) is HoldState.EXPIRED
        current.state = HoldState.EXPIRED if expired else HoldState.RELEASED
        self.resolved[hold_id] = current
        return HoldOutcome(hold_id, ItemStatus.DONE, current)

    def _stored(self, hold_id: str) -> Hold:
        current = self.known.get(hold_id)
        if current is None:
            raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id!r}", {"hold_id": hold_id})
        return current

    def _commit(self, current: Hold, amount_points: int, credit_account: str) -> ItemResult:
        """As the general path's commit: the hold's points move to `credit_account` as transfer id = hold id."""
        hold_id = current.hold_id
        if current.state is HoldState.COMMITTED:
            check_repeated_commit(current, amount_points, credit_account)
            return ItemResult(hold_id, Status.ALREADY_POSTED, posting=self.posted[hold_id])
        if credit_account == current.account:
            raise InvalidArgument("credit_account", "must differ from the held account")
        amount = checked_commit_amount(current, amount_points, self.book.now_us)
        posting = move_held_points(self.book, current, amount, credit_account)
        current.state, current.committed_points, current.credit_account = HoldState.COMMITTED, amount, credit_account
        self.posted[hold_id] = posting
        self.postings.append(posting)
        return ItemResult(hold_id, Status.POSTED, posting=posting)
