"""A small, durable stand-in for carbon.ledger.v1 (SQLite), run as a real process while ledger_svc is being built.

It keeps the agreements the gateway relies on: holds reserve soonest-expiring lots and expire by themselves;
CommitHold posts a transfer whose id is the hold id and returns the lots it took; a credit with carried_lots
recreates them with their expiry; every id is idempotent (same body: first result; other body: refused).
`python tests/gateway/ledger_double.py` with CARBON_PORT, CARBON_DATABASE_URL (sqlite:///...), CARBON_REGION.
CARBON_TEST_CRASH_AT=ledger_after_hold|ledger_after_post|ledger_after_commit dies after storing, before replying.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc

from carbon.common.v1 import common_pb2
from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from service_kit.server import Registration, serve
from service_kit.settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (lot_id TEXT PRIMARY KEY, account TEXT, earned_on TEXT, expires_at TEXT, remaining INT);
CREATE TABLE IF NOT EXISTS postings (transfer_id TEXT PRIMARY KEY, fingerprint TEXT, lots TEXT, posted_at TEXT);
CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT, transfer_id TEXT,
  amount INT, counterparty TEXT, code INT, reference TEXT, posted_at TEXT);
CREATE TABLE IF NOT EXISTS holds (hold_id TEXT PRIMARY KEY, fingerprint TEXT, account TEXT, amount INT, state INT,
  expires_at TEXT, lots TEXT, code INT, reference TEXT);
"""


def now() -> datetime:
    return datetime.now(UTC)


def is_system(account: str) -> bool:
    return account.startswith("system:")


def stamp(moment: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    result = Timestamp()
    result.FromDatetime(moment)
    return result


def portion(item: dict[str, Any]) -> pb.LotPortion:
    earned = date.fromisoformat(item["earned_on"])
    return pb.LotPortion(
        lot_id=item["lot_id"],
        earned_on=common_pb2.Date(year=earned.year, month=earned.month, day=earned.day),
        expires_at=stamp(datetime.fromisoformat(item["expires_at"])),
        amount_points=item["amount"],
    )


class LedgerDouble(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(self, path: str, crash_at: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.crash_at = crash_at

    def crash(self, point: str) -> None:
        if self.crash_at == point:
            os._exit(137)

    # --- lots ---
    def take_lots(self, account: str, amount: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT lot_id, earned_on, expires_at, remaining FROM lots WHERE account=? AND remaining>0 AND expires_at>?"
            " ORDER BY expires_at, lot_id",
            (account, now().isoformat()),
        ).fetchall()
        if sum(int(row[3]) for row in rows) < amount:
            raise FailedPrecondition("INSUFFICIENT_POINTS", f"{account} has fewer than {amount} points")
        taken, left = [], amount
        for lot_id, earned_on, expires_at, remaining in rows:
            if left == 0:
                break
            part = min(left, remaining)
            self.db.execute("UPDATE lots SET remaining=remaining-? WHERE lot_id=?", (part, lot_id))
            taken.append({"lot_id": lot_id, "earned_on": earned_on, "expires_at": expires_at, "amount": part})
            left -= part
        return taken

    def give_back(self, lots: list[dict[str, Any]]) -> None:
        for item in lots:
            self.db.execute("UPDATE lots SET remaining=remaining+? WHERE lot_id=?", (item["amount"], item["lot_id"]))

    def add_lots(self, account: str, amount: int, carried: list[pb.LotPortion]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]]
        if carried:
            items = [
                {
                    "earned_on": date(lot.earned_on.year, lot.earned_on.month, lot.earned_on.day).isoformat(),
                    "expires_at": lot.expires_at.ToDatetime(tzinfo=UTC).isoformat(),
                    "amount": lot.amount_points,
                }
                for lot in carried
            ]
            if sum(lot.amount_points for lot in carried) != amount:
                raise InvalidArgument("carried_lots", "must sum to amount_points")
        else:
            today = now().date()
            expiry = datetime(today.year + 2, today.month, min(today.day, 28), tzinfo=UTC)
            items = [{"earned_on": today.isoformat(), "expires_at": expiry.isoformat(), "amount": amount}]
        for item in items:
            item["lot_id"] = uuid.uuid4().hex
            self.db.execute(
                "INSERT INTO lots VALUES (?,?,?,?,?)",
                (item["lot_id"], account, item["earned_on"], item["expires_at"], item["amount"]),
            )
        return items

    def entry(self, transfer_id: str, debit: str, credit: str, amount: int, code: int, reference: str) -> str:
        moment = now().isoformat()
        for account, signed, other in ((debit, -amount, credit), (credit, amount, debit)):
            self.db.execute(
                "INSERT INTO entries (account, transfer_id, amount, counterparty, code, reference, posted_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (account, transfer_id, signed, other, code, reference, moment),
            )
        return moment

    # --- transfers ---
    def PostTransfers(
        self, request: pb.PostTransfersRequest, context: grpc.ServicerContext
    ) -> pb.PostTransfersResponse:
        results = []
        with self.lock:
            for item in request.transfers:
                results.append(self.post_one(item))
        if any(item.code == pb.TRANSFER_CODE_TRANSFER_IN for item in request.transfers):
            self.crash("ledger_after_post")
        return pb.PostTransfersResponse(results=results)

    def post_one(self, item: pb.Transfer) -> pb.TransferResult:
        fingerprint = f"{item.debit_account}|{item.credit_account}|{item.amount_points}|{item.code}"
        row = self.db.execute(
            "SELECT fingerprint, lots FROM postings WHERE transfer_id=?", (item.transfer_id,)
        ).fetchone()
        if row is not None:
            if row[0] != fingerprint:
                return pb.TransferResult(
                    transfer_id=item.transfer_id,
                    status=pb.TRANSFER_STATUS_FAILED,
                    failure_reason="IDEMPOTENCY_KEY_REUSED",
                )
            stored = [portion(lot) for lot in json.loads(row[1])]
            return pb.TransferResult(
                transfer_id=item.transfer_id, status=pb.TRANSFER_STATUS_ALREADY_POSTED, lots=stored
            )
        try:
            self.db.execute("BEGIN IMMEDIATE")
            lots: list[dict[str, Any]] = []
            if item.amount_points <= 0:
                raise FailedPrecondition("INVALID_AMOUNT", "amount must be positive")
            if not is_system(item.debit_account):
                lots = self.take_lots(item.debit_account, item.amount_points)
            if not is_system(item.credit_account):
                lots = self.add_lots(item.credit_account, item.amount_points, list(item.carried_lots))
            moment = self.entry(
                item.transfer_id, item.debit_account, item.credit_account, item.amount_points, item.code, item.reference
            )
            self.db.execute(
                "INSERT INTO postings VALUES (?,?,?,?)", (item.transfer_id, fingerprint, json.dumps(lots), moment)
            )
            self.db.execute("COMMIT")
        except (FailedPrecondition, InvalidArgument) as error:
            self.db.execute("ROLLBACK")
            return pb.TransferResult(
                transfer_id=item.transfer_id, status=pb.TRANSFER_STATUS_FAILED, failure_reason=error.reason
            )
        return pb.TransferResult(
            transfer_id=item.transfer_id,
            status=pb.TRANSFER_STATUS_POSTED,
            posted_at=stamp(datetime.fromisoformat(moment)),
            lots=[portion(lot) for lot in lots],
        )

    def GetTransfer(self, request: pb.GetTransferRequest, context: grpc.ServicerContext) -> pb.GetTransferResponse:
        with self.lock:
            row = self.db.execute("SELECT lots FROM postings WHERE transfer_id=?", (request.transfer_id,)).fetchone()
        if row is None:
            raise NotFound("TRANSFER_NOT_FOUND", f"no transfer {request.transfer_id}")
        lots = [portion(lot) for lot in json.loads(row[0])]
        result = pb.TransferResult(transfer_id=request.transfer_id, status=pb.TRANSFER_STATUS_POSTED, lots=lots)
        return pb.GetTransferResponse(transfer=pb.Transfer(transfer_id=request.transfer_id), result=result)

    # --- holds ---
    def load_hold(self, hold_id: str) -> tuple[Any, ...]:
        row = self.db.execute(
            "SELECT hold_id, fingerprint, account, amount, state, expires_at, lots, code, reference FROM holds"
            " WHERE hold_id=?",
            (hold_id,),
        ).fetchone()
        if row is None:
            raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id}")
        if row[4] == pb.HOLD_STATE_PENDING and datetime.fromisoformat(row[5]) <= now():
            self.give_back(json.loads(row[6]))
            self.db.execute("UPDATE holds SET state=? WHERE hold_id=?", (pb.HOLD_STATE_EXPIRED, hold_id))
            return self.load_hold(hold_id)
        return tuple(row)

    def info(self, row: tuple[Any, ...]) -> pb.HoldInfo:
        committed = row[3] if row[4] == pb.HOLD_STATE_COMMITTED else 0
        return pb.HoldInfo(
            hold_id=row[0], account=row[2], amount_points=row[3], state=row[4],
            expires_at=stamp(datetime.fromisoformat(row[5])), committed_points=committed, code=row[7],
            reference=row[8], lots=[portion(lot) for lot in json.loads(row[6])],
        )  # fmt: skip

    def Hold(self, request: pb.HoldRequest, context: grpc.ServicerContext) -> pb.HoldResponse:
        fingerprint = f"{request.account}|{request.amount_points}|{request.timeout.ToMilliseconds()}|{request.code}"
        with self.lock:
            try:
                row = self.load_hold(request.hold_id)
            except NotFound:
                row = None
            if row is not None:
                if row[1] != fingerprint:
                    raise AlreadyExists("IDEMPOTENCY_KEY_REUSED", "hold id used with another body")
                return pb.HoldResponse(hold=self.info(row))
            self.db.execute("BEGIN IMMEDIATE")
            try:
                lots = self.take_lots(request.account, request.amount_points)
            except FailedPrecondition:
                self.db.execute("ROLLBACK")
                raise
            expires_at = now() + timedelta(milliseconds=request.timeout.ToMilliseconds())
            self.db.execute(
                "INSERT INTO holds VALUES (?,?,?,?,?,?,?,?,?)",
                (request.hold_id, fingerprint, request.account, request.amount_points, pb.HOLD_STATE_PENDING,
                 expires_at.isoformat(), json.dumps(lots), request.code, request.reference),
            )  # fmt: skip
            self.db.execute("COMMIT")
            row = self.load_hold(request.hold_id)
        self.crash("ledger_after_hold")
        return pb.HoldResponse(hold=self.info(row))

    def CommitHold(self, request: pb.CommitHoldRequest, context: grpc.ServicerContext) -> pb.CommitHoldResponse:
        with self.lock:
            row = self.load_hold(request.hold_id)
            if row[4] in (pb.HOLD_STATE_EXPIRED, pb.HOLD_STATE_RELEASED):
                reason = "HOLD_EXPIRED" if row[4] == pb.HOLD_STATE_EXPIRED else "HOLD_RELEASED"
                raise FailedPrecondition(reason, f"hold {request.hold_id} is no longer pending")
            if row[4] == pb.HOLD_STATE_PENDING:
                self.db.execute("BEGIN IMMEDIATE")
                moment = self.entry(row[0], row[2], request.credit_account, row[3], row[7], row[8])
                self.db.execute("INSERT INTO postings VALUES (?,?,?,?)", (row[0], "hold", row[6], moment))
                self.db.execute("UPDATE holds SET state=? WHERE hold_id=?", (pb.HOLD_STATE_COMMITTED, row[0]))
                self.db.execute("COMMIT")
                row = self.load_hold(request.hold_id)
        self.crash("ledger_after_commit")
        info = self.info(row)
        result = pb.TransferResult(transfer_id=row[0], status=pb.TRANSFER_STATUS_POSTED, lots=info.lots)
        return pb.CommitHoldResponse(hold=info, result=result)

    def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: grpc.ServicerContext) -> pb.ReleaseHoldResponse:
        with self.lock:
            row = self.load_hold(request.hold_id)
            if row[4] == pb.HOLD_STATE_COMMITTED:
                raise FailedPrecondition("HOLD_COMMITTED", "hold was committed")
            if row[4] == pb.HOLD_STATE_PENDING:
                self.give_back(json.loads(row[6]))
                self.db.execute("UPDATE holds SET state=? WHERE hold_id=?", (pb.HOLD_STATE_RELEASED, row[0]))
                row = self.load_hold(request.hold_id)
        return pb.ReleaseHoldResponse(hold=self.info(row))

    def GetHold(self, request: pb.GetHoldRequest, context: grpc.ServicerContext) -> pb.GetHoldResponse:
        with self.lock:
            return pb.GetHoldResponse(hold=self.info(self.load_hold(request.hold_id)))

    # --- reads ---
    def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        with self.lock:
            for (hold_id,) in self.db.execute(
                "SELECT hold_id FROM holds WHERE account=? AND state=?", (request.account, pb.HOLD_STATE_PENDING)
            ).fetchall():
                self.load_hold(hold_id)
            if is_system(request.account):
                total = self.db.execute(
                    "SELECT COALESCE(SUM(amount),0) FROM entries WHERE account=?", (request.account,)
                ).fetchone()[0]
                return pb.GetBalanceResponse(balance=pb.Balance(account=request.account, total_points=total))
            available = self.db.execute(
                "SELECT COALESCE(SUM(remaining),0) FROM lots WHERE account=? AND expires_at>?",
                (request.account, now().isoformat()),
            ).fetchone()[0]
            held = self.db.execute(
                "SELECT COALESCE(SUM(amount),0) FROM holds WHERE account=? AND state=?",
                (request.account, pb.HOLD_STATE_PENDING),
            ).fetchone()[0]
        balance = pb.Balance(
            account=request.account, available_points=available, held_points=held, total_points=available + held
        )
        return pb.GetBalanceResponse(balance=balance)

    def ListStatementEntries(
        self, request: pb.ListStatementEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListStatementEntriesResponse:
        query = "SELECT seq, transfer_id, code, amount, counterparty, posted_at, reference FROM entries WHERE account=?"
        args: list[Any] = [request.account]
        if request.page_token:
            query += " AND seq < ?"
            args.append(int(request.page_token))
        if request.HasField("start_time"):
            query += " AND posted_at >= ?"
            args.append(request.start_time.ToDatetime(tzinfo=UTC).isoformat())
        if request.HasField("end_time"):
            query += " AND posted_at < ?"
            args.append(request.end_time.ToDatetime(tzinfo=UTC).isoformat())
        size = request.page_size or 100
        with self.lock:
            rows = self.db.execute(query + " ORDER BY seq DESC LIMIT ?", [*args, size + 1]).fetchall()
        entries = [
            pb.StatementEntry(
                transfer_id=row[1], code=row[2], amount_points=row[3], counterparty_account=row[4],
                posted_at=stamp(datetime.fromisoformat(row[5])), reference=row[6],
            )
            for row in rows[:size]
        ]  # fmt: skip
        token = str(rows[size - 1][0]) if len(rows) > size else ""
        return pb.ListStatementEntriesResponse(entries=entries, next_page_token=token)

    def CheckConservation(
        self, request: pb.CheckConservationRequest, context: grpc.ServicerContext
    ) -> pb.CheckConservationResponse:
        with self.lock:
            for (hold_id,) in self.db.execute(
                "SELECT hold_id FROM holds WHERE state=?", (pb.HOLD_STATE_PENDING,)
            ).fetchall():
                self.load_hold(hold_id)
            total = self.db.execute("SELECT COALESCE(SUM(amount),0) FROM entries").fetchone()[0]
            users = self.db.execute(
                "SELECT COALESCE(SUM(amount),0) FROM entries WHERE account NOT LIKE 'system:%'"
            ).fetchone()[0]
            in_lots = self.db.execute("SELECT COALESCE(SUM(remaining),0) FROM lots").fetchone()[0]
            held = self.db.execute(
                "SELECT COALESCE(SUM(amount),0) FROM holds WHERE state=?", (pb.HOLD_STATE_PENDING,)
            ).fetchone()[0]
        return pb.CheckConservationResponse(
            balanced=total == 0 and users == in_lots + held, outstanding_points=users, sum_of_all_balances_points=total
        )


def main() -> int:
    settings = Settings.from_env("ledger_svc")
    path = settings.effective_database_url().removeprefix("sqlite:///")
    servicer = LedgerDouble(path, os.environ.get("CARBON_TEST_CRASH_AT", ""))  # type: ignore[abstract]
    name = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name
    serve(settings, [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, servicer, name)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
