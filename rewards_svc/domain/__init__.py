"""The rules of spending points, pure Python and free of I/O: the catalog, per-account limits, the redemption and
voucher states, charity donations, and what every request must carry."""
