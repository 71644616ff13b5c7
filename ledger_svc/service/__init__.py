"""Use cases of the ledger, one function per operation; each owns its transaction boundary."""
