"""`python -m ledger_svc` starts the service (settings from CARBON_* environment variables)."""

import gc
import sys

from ledger_svc.server import registrations
from service_kit.runner import run_service

if __name__ == "__main__":
    # A batch of 1,000 credits allocates tens of thousands of short-lived objects: with the default threshold (700)
    # the cyclic collector ran dozens of times per batch (~10% of the server's CPU). Collect the young generation
    # less often, and keep what import created out of every collection.
    gc.set_threshold(50_000, 20, 20)
    gc.freeze()
    sys.exit(run_service("ledger_svc", registrations))
