"""Postings of concurrent cross-region transfers into one region's ledger, sent together as one PostTransfers call.

Each transfer's credit (and the rare late debit or reversal) is one unlinked item of the batch: the ledger posts or
refuses each on its own and answers each with its own result, deduplicated by the item's id as when it is sent alone,
so every transfer keeps its exact outcome. A region that does not answer fails every member of the group, which is
what each would have met alone (its step is postponed and re-sent with the same id). A final error of the whole call
(a malformed item would make one) sends the items again one by one, so one bad item cannot decide the others'
outcome. See docs/adr/0620-transfer-credits-grouped-per-region.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway.clients import RegionClients, RemoteError, call
from service_kit.coalescing import Coalescer

log = logging.getLogger("carbon.gateway.postings")
# Bounds of a group: more arrivals wait for the next one; the ledger's own limit is far higher.
MAX_GROUP_POSTINGS = 500
# Groups in flight per region: while these are busy, arrivals gather into the next group.
SLOTS_PER_REGION = 2


class Posting(NamedTuple):
    region_code: str
    transfer: ledger.Transfer
    timeout_s: float  # the group's call ends by its members' earliest deadline


Answer = ledger.TransferResult | RemoteError


class LedgerPostings:
    def __init__(self, clients: RegionClients, slots_per_region: int = SLOTS_PER_REGION) -> None:
        self.clients = clients
        self._groups: Coalescer[Posting, Answer] = Coalescer(self._post_group, slots_per_region, MAX_GROUP_POSTINGS)

    def post(self, region_code: str, transfer: ledger.Transfer, timeout_s: float) -> ledger.TransferResult:
        """The item's own result (posted now, posted before, or refused with its reason). Raises RemoteError: final
        when the ledger refused the call for this item, retryable when the region did not answer."""
        answer = self._groups.submit(region_code, Posting(region_code, transfer, timeout_s), 1)
        if isinstance(answer, RemoteError):
            raise answer
        return answer

    def post_now(self, region_code: str, transfers: Sequence[ledger.Transfer], timeout_s: float) -> list[Answer]:
        """Many postings into one region, sent at once as one group (a batch of CreateCrossRegionTransfers brings its
        own): each item's result as `post` gives it, or the RemoteError it would raise in its place."""
        answers: list[Answer] = []
        for start in range(0, len(transfers), MAX_GROUP_POSTINGS):
            chunk = transfers[start : start + MAX_GROUP_POSTINGS]
            answers += self._post_group([Posting(region_code, transfer, timeout_s) for transfer in chunk])
        return answers

    def _post_group(self, postings: Sequence[Posting]) -> list[Answer]:
        if len(postings) > 1 and any(p.timeout_s <= 0 for p in postings):  # out of time: answered alone, at once
            return [answer for posting in postings for answer in self._post_group([posting])]
        region = postings[0].region_code
        stub = self.clients.ledger(region)
        request = ledger.PostTransfersRequest(transfers=[p.transfer for p in postings])
        try:
            response = call(region, stub.PostTransfers, request, min(p.timeout_s for p in postings))
        except RemoteError as error:
            if not error.final or len(postings) == 1:
                return [error] * len(postings)
            log.warning("a grouped posting was refused; posting its items one by one", extra={"error": str(error)})
            return [answer for posting in postings for answer in self._post_group([posting])]
        assert len(response.results) == len(postings), "the ledger answers every item"
        return list(response.results)
