"""The pure rules of ingest: behaviours, rule versions, scoring, caps, plausibility and batch signatures (no I/O)."""
