"""Tables and queries of ledger_svc (SQLAlchemy 2.x Core): the only package that knows SQL. PostgreSQL-only
statements (COPY, upserts over arrays, statements sent straight to the driver) live in the pg_*.py modules."""
