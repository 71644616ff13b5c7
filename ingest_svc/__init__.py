"""Behaviour catalog, scoring rules, data partners and event ingestion of one region."""
