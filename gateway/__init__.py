"""The national federation hub: region registry, directory, cross-region transfers, settlement."""
