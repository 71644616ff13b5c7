"""The national federation hub: admits every outside caller, forwards regional calls to the account's home region,
and runs what spans regions: cross-region transfers, redeem anywhere, the national directory and settlement."""
