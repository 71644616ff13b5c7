"""`python -m ledger_svc` starts the service (settings from CARBON_* environment variables)."""

import sys

from ledger_svc.server import registrations
from service_kit.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("ledger_svc", registrations))
