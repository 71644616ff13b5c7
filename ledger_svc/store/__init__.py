"""Tables and queries of ledger_svc (SQLAlchemy 2.x Core): the only package that knows SQL."""

from ledger_svc.store.tables import metadata

__all__ = ["metadata"]
