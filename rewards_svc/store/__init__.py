"""Tables and queries of rewards_svc (SQLAlchemy 2.x Core): the only package that knows SQL.

One module per area (`store.rewards`, `store.redemptions`, `store.vouchers`, `store.charity`, `store.requests`);
every function takes an open Connection, the service layer owns the transactions.
"""

from rewards_svc.store import charity, redemptions, requests, rewards, vouchers
from rewards_svc.store.tables import metadata

__all__ = ["charity", "metadata", "redemptions", "requests", "rewards", "vouchers"]
