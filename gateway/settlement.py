"""Settlement: what each region owes each other for a period, rebuilt from the regions' clearing entries alone.

Region B's clearing account records every credit it issued for points that left region A (TRANSFER_IN, negative
on B's clearing) and every reversal of one (positive), each with the reference "xrt/<A>/<B>/<id>". Summed per
(A, B) that is what A owes B, at 100 points = 1 CNY. clearing_balanced checks that the clearing accounts of all
regions sum to zero (a transfer in flight or UNKNOWN shows up as an imbalance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway.clients import RegionClients, RemoteError, call
from gateway.domain import CLEARING_ACCOUNT, Position, net_positions, parse_reference
from service_kit.errors import InvalidArgument
from service_kit.wire import to_timestamp

PAGE_SIZE = 500
MAX_PAGES = 10_000


@dataclass(frozen=True)
class SettlementReport:
    gross: list[Position]
    net: list[Position]
    clearing_balanced: bool


def settlement_report(clients: RegionClients, start: datetime, end: datetime, timeout_s: float) -> SettlementReport:
    if end <= start:
        raise InvalidArgument("period_end", "must be after period_start")
    gross: dict[tuple[str, str], int] = {}
    clearing_total = 0
    for code in clients.registry.sorted_codes():
        stub = clients.ledger(code)
        try:
            token = ""
            for _ in range(MAX_PAGES):
                page = call(
                    code,
                    stub.ListStatementEntries,
                    ledger.ListStatementEntriesRequest(
                        account=CLEARING_ACCOUNT,
                        page_size=PAGE_SIZE,
                        page_token=token,
                        start_time=to_timestamp(start),
                        end_time=to_timestamp(end),
                    ),
                    timeout_s,
                )
                for entry in page.entries:
                    route = parse_reference(entry.reference)
                    if route is not None and route[1] == code:
                        key = (route[0], route[1])
                        gross[key] = gross.get(key, 0) - entry.amount_points
                token = page.next_page_token
                if not token:
                    break
            balance = call(code, stub.GetBalance, ledger.GetBalanceRequest(account=CLEARING_ACCOUNT), timeout_s)
        except RemoteError as error:
            raise error.as_unavailable() from None
        clearing_total += balance.balance.total_points
    flows = [Position(debtor, creditor, points) for (debtor, creditor), points in sorted(gross.items()) if points]
    return SettlementReport(flows, net_positions(gross), clearing_total == 0)
