"""Tables and queries of the gateway (SQLAlchemy 2.x Core): the only package that knows SQL."""

from gateway.store import claims as _claims  # registers the claim tables in metadata
from gateway.store.tables import metadata

__all__ = ["_claims", "metadata"]
