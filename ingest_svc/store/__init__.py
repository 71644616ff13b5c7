"""The only place in ingest that knows SQL (and the Redis dedupe accelerator): tables.py holds the schema, one module
per topic holds its queries, pg_*.py the PostgreSQL-only statements of the per-batch path."""
