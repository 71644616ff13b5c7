"""Use cases of identity_svc, one module per group of operations; transaction boundaries live here."""
