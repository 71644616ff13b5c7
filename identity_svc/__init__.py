"""Accounts, real-name records, channel bindings and consents of one region."""
