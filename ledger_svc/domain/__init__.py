"""The ledger's rules, pure Python and free of I/O: account names, time, lots, transfers and their fingerprints, the
book a transaction posts on, credits, holds, refunds, expiry, the hash chain, conservation."""
