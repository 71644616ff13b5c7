"""Tables and queries of rewards_svc (SQLAlchemy 2.x Core): the only package that knows SQL.

One module per area (`store.rewards`, `store.redemptions`, `store.vouchers`, `store.charity`,
`store.idempotency_keys`), the tables in `store.tables`;
every function takes an open Connection, the service layer owns the transactions.
"""

from rewards_svc.store import charity, idempotency_keys, redemptions, rewards, tables, vouchers
from rewards_svc.store.tables import metadata

__all__ = ["charity", "idempotency_keys", "metadata", "redemptions", "rewards", "tables", "vouchers"]
