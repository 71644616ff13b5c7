"""Use cases of rewards_svc, one module per group of operations; transaction boundaries live here and never span a
ledger call."""
