"""The ledger's rules, pure Python and free of I/O: account names, lots and expiry, postings, holds, the hash chain."""
