"""Use cases of the ledger, one module per group of operations; each use case owns its transaction boundary."""
