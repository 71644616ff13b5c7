"""The HTTP routes, one module per area of daily operations."""
