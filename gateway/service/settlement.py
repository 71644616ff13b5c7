"""Settlement: what each region owes each other for a period, rebuilt from the regions' clearing entries alone.

The sums and the netting are gateway.domain.settlement. clearing_balanced checks that the clearing accounts of all
regions sum to zero (a transfer in flight or UNKNOWN shows up as an imbalance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway.clients import RegionClients, RemoteError, call
from gateway.domain.settlement import ClearingFlows, Position
from service_kit.accounts import CLEARING_ACCOUNT
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
    flows = ClearingFlows()
    clearing_total = 0
    for code in clients.registry.sorted_codes():
        try:
            _add_clearing_entries(clients, code, start, end, timeout_s, flows)
            balance = call(
                code, clients.ledger(code).GetBalance, ledger.GetBalanceRequest(account=CLEARING_ACCOUNT), timeout_s
            )
        except RemoteError as error:
            raise error.as_unavailable() from None
        clearing_total += balance.balance.total_points
    return SettlementReport(gross=flows.gross(), net=flows.net(), clearing_balanced=clearing_total == 0)


def _add_clearing_entries(
    clients: RegionClients, code: str, start: datetime, end: datetime, timeout_s: float, flows: ClearingFlows
) -> None:
    """Every entry of one region's clearing account in the period, page by page."""
    token = ""
    for _ in range(MAX_PAGES):
        page = call(
            code,
            clients.ledger(code).ListStatementEntries,
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
            flows.add_entry(code, entry.reference, entry.amount_points)
        token = page.next_page_token
        if not token:
            return
