"""The rules of ingest, pure Python with no I/O: events and their validation, behaviours and rule versions, scoring
with daily caps, partners and their keys, the catalog, and what an accepted event records and answers."""
