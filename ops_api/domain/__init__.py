"""The ops API's own rules, pure Python and free of I/O: staff roles and what each may do, four-eyes adjustments,
what the audit log records, and how a request id becomes the downstream idempotency key."""
