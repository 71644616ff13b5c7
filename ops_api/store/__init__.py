"""Tables and queries of the ops API's own database (SQLAlchemy 2.x Core): the only package that knows SQL.

Nothing here touches another service's data; balances, accounts and journals stay behind their services' gRPC APIs.
"""

from ops_api.store.tables import metadata

__all__ = ["metadata"]
