"""Benefits catalog, redemptions, vouchers and charity projects of one region."""
