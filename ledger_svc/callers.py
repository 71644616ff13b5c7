"""The ledger's rules on who may post what, beyond the access table's per-method list (service_kit/access.py).

PostTransfers serves several callers (rewards spends and donates, identity disposes of a closing account's points,
the gateway moves points across regions, the ops API adjusts), but two kinds of item create points in this region
and so answer to fewer: points carried in from another region (carried lots) only from the gateway, which debited
them at home; fresh points from a system account (system:issuance above all) only from this region's ingest, which
scored the behaviour, incentives (a campaign's budget and the bonuses paid from it, ADR 0115) and the ops API
(four-eyes adjustments). docs/access.md lists both rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from carbon.ledger.v1 import ledger_service_pb2 as pb
from service_kit.access import Caller
from service_kit.errors import PermissionDenied

SYSTEM_PREFIX = "system:"


def check_transfers(caller: Caller, region_code: str, transfers: Sequence[pb.Transfer]) -> None:
    """PermissionDenied CALLER_NOT_ALLOWED for the first item the caller may not post; nothing is posted then."""
    # Incentives issues a campaign's budget into the campaign's own account and pays bonuses out of it (ADR 0115).
    may_issue = caller.is_ops_api or any(caller.is_regional(region_code, kind) for kind in ("ingest", "incentives"))
    for index, transfer in enumerate(transfers):
        if transfer.carried_lots and not caller.is_gateway:
            _refuse(caller, f"transfers[{index}].carried_lots", "only the gateway carries lots in from other regions")
        if not transfer.carried_lots and transfer.debit_account.startswith(SYSTEM_PREFIX) and not may_issue:
            _refuse(
                caller,
                f"transfers[{index}].debit_account",
                f"only this region's ingest, incentives and the ops API post from {transfer.debit_account}",
            )


def _refuse(caller: Caller, field: str, why: str) -> None:
    raise PermissionDenied(
        "CALLER_NOT_ALLOWED",
        f"{field}: {caller.identity or 'a caller without identity'} may not post this: {why}",
        {"caller": caller.identity, "field": field, "method": "/carbon.ledger.v1.LedgerService/PostTransfers"},
    )
