"""Ingest of one region: the behaviour catalog and its versioned rules, data partners and their signing keys, and
the submission of behaviour events, scored and credited to the region's ledger exactly once."""
