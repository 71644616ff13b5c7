"""Audit use cases: VerifyJournal (the hash chain) and CheckConservation (every point accounted for)."""

from __future__ import annotations

from ledger_svc.domain.conservation import Conservation, conservation
from ledger_svc.domain.journal import Verification
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import chain, reads


def verify_journal(ctx: LedgerContext) -> Verification:
    """Seals what is not sealed yet, then recomputes every block from its entries and the chain from genesis."""
    ctx.seal_everything()
    with ctx.engine.connect() as conn:
        return chain.verify(conn)


def check_conservation(ctx: LedgerContext) -> Conservation:
    with ctx.engine.connect() as conn:
        return conservation(reads.conservation_sums(conn))
