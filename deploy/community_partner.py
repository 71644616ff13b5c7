"""Registers the community-centre partner in one region's ingest and prints its signing secret, for the ops API.

    kubectl -n carbon-330000 exec deploy/ingest -- python /opt/carbon/community_partner.py
    docker compose -f deploy/compose.yaml exec ingest-330000 python /opt/carbon/community_partner.py

Run it inside the region's ingest container: the region is its CARBON_REGION and ingest listens on
127.0.0.1:$CARBON_PORT (or pass --ingest HOST:PORT and --region CODE). Partner administration answers only the ops
API's identity (docs/access.md): the script calls with the identity its environment names (CARBON_SERVICE_IDENTITY,
CARBON_SERVICE_KEY_FILE or the CARBON_TLS_* certificate), so give it the ops API's. The registration is the one
`carbon up` makes (service_kit.embedded.register_community_partners: partner "community-centre", community
behaviours, this region only), idempotent by its request id: running it again prints the same secret. The ops API
needs that secret as CARBON_SECRET_COMMUNITY_PARTNER_<region> (deploy/README.md); the output is the secret alone,
for `$(...)`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

import grpc

from service_kit.embedded import register_community_partners
from service_kit.settings import Settings
from service_kit.topology import RegionEntry, Registry


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=env.get("CARBON_REGION", ""), help="region code (default CARBON_REGION)")
    parser.add_argument(
        "--ingest",
        default=f"127.0.0.1:{env.get('CARBON_PORT', '50051')}",
        help="the region's ingest (default 127.0.0.1:$CARBON_PORT)",
    )
    args = parser.parse_args(argv)
    if len(args.region) != 6 or not args.region.isdigit():
        print(f"community_partner: a 6-digit region code is needed, got {args.region!r}", file=sys.stderr)
        return 2
    region = RegionEntry(args.region, "", "", "", ingest_address=args.ingest, ledger_address="", rewards_address="")
    try:
        operator = Settings.from_env("ops_api", env)
        secrets = register_community_partners(Registry(gateway_address="", regions=[region]), operator)
    except grpc.RpcError as error:
        print(f"community_partner: {args.ingest}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(secrets[args.region], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
