"""`python -m gateway` starts the service (settings from CARBON_* environment variables)."""

import sys

from gateway.server import registrations
from service_kit.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("gateway", registrations))
