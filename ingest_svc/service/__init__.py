"""Ingest's use cases: submitting events (admission, then the phases of submission.py), explaining a score, rules
and partners administration, statistics. Transaction boundaries live here."""
