"""`python -m incentives_svc` starts the service (settings from CARBON_* environment variables)."""

import sys

from incentives_svc.server import registrations
from service_kit.runner import run_service

if __name__ == "__main__":
    sys.exit(run_service("incentives_svc", registrations))
