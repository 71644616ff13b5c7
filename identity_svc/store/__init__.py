"""Tables and queries of identity_svc (SQLAlchemy 2.x Core), and the consent cache (Redis or in-process): the only
package that knows SQL or Redis.

One module per aggregate (`store.accounts`, `store.bindings`, `store.consents`, `store.closures`,
`store.resident_authorizations`, `store.reminders`), the tables in `store.tables`; every query takes an open
Connection, the service layer owns the transactions.
"""

from identity_svc.store import (
    accounts,
    bindings,
    closures,
    consent_cache,
    consents,
    corrections,
    jobs,
    reminders,
    resident_authorizations,
    tables,
)
from identity_svc.store.tables import metadata

__all__ = [
    "accounts",
    "bindings",
    "closures",
    "consent_cache",
    "consents",
    "corrections",
    "jobs",
    "metadata",
    "reminders",
    "resident_authorizations",
    "tables",
]
