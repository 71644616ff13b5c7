"""`python -m ops_api` serves the ops HTTP API; `python -m ops_api create-user|create-token` bootstraps staff.

python -m ops_api                                   serve on CARBON_HOST:CARBON_PORT (default 127.0.0.1:18049)
python -m ops_api create-user admin --role admin    add a staff user
python -m ops_api create-token admin                print a new bearer token for the user (shown once)
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from ops_api.context import open_engine
from ops_api.problems import Problem
from ops_api.service.staff import create_user, issue_token
from ops_api.settings import OpsSettings
from service_kit import logs, telemetry
from service_kit.clock import system_clock
from service_kit.runner import start_clock
from service_kit.settings import SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops_api", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the HTTP API (the default)")
    user = commands.add_parser("create-user", help="add a staff user")
    user.add_argument("user_id")
    user.add_argument("--role", required=True, choices=["viewer", "community_staff", "operator", "admin"])
    user.add_argument("--name", default="")
    user.add_argument("--region", default="", help="community staff: their region code")
    user.add_argument("--centre", default="", help="community staff: their community centre id")
    token = commands.add_parser("create-token", help="issue a bearer token for a staff user")
    token.add_argument("user_id")
    token.add_argument("--label", default="cli")
    token.add_argument("--valid-days", type=int, default=90)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = OpsSettings.from_env()
        if args.command in (None, "serve"):
            logs.configure(settings.base)
            telemetry.configure(settings.base)
    except SettingsError as error:
        print(f"ops_api: {error}", file=sys.stderr)
        return 2
    start_clock(settings.base)
    if args.command in (None, "serve"):
        # FastAPI, the routes and uvicorn only where they serve: `carbon up` runs create-user and create-token as
        # processes of their own on every start, and those imports were most of each one's CPU (docs/adr/0027).
        from ops_api.serving import serve

        return serve(settings)
    engine = open_engine(settings)
    try:
        if args.command == "create-user":
            created = create_user(
                engine, system_clock(), args.user_id, args.role, display_name=args.name, region_code=args.region,
                centre_id=args.centre, created_by="cli",
            )  # fmt: skip
            print(f"created {created.user_id} ({created.role.value})")
        else:
            issued = issue_token(engine, system_clock(), args.user_id, args.label, timedelta(days=args.valid_days))
            print(issued.token)
    except Problem as problem:
        print(f"ops_api: {problem.detail}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
