"""Tables and queries of incentives_svc: the only package that knows SQL. Every function takes an open
Connection; the service layer owns the transactions."""

from incentives_svc.store.tables import metadata

__all__ = ["metadata"]
