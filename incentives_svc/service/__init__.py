"""Use cases of incentives; transaction boundaries live here."""
