"""Use cases of the gateway: cross-region transfers, redeem anywhere, their recovery, the directory, settlement,
admission of callers and forwarding of regional methods. Transaction boundaries live here."""
