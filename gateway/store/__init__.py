"""Tables and queries of the gateway (SQLAlchemy 2.x Core): the only package that knows SQL."""

from gateway.store.tables import metadata

__all__ = ["metadata"]
