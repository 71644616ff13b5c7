"""Registers the community-centre partner in one region's ingest and prints its signing secret, for the ops API.

    kubectl -n carbon-national exec deploy/ops-api -- python /opt/carbon/community_partner.py --region 330000
    docker compose -f deploy/compose.yaml exec ops-api python /opt/carbon/community_partner.py --region 330000

Partner administration answers only the ops API's identity (docs/access.md), so run it inside the ops API's container:
it calls with the identity that container's environment names (CARBON_SERVICE_IDENTITY and CARBON_SERVICE_KEY_FILE,
or the CARBON_TLS_* certificate), and finds the region's ingest in the registry the ops API reads
(CARBON_REGISTRY_FILE; or pass --ingest HOST:PORT). Inside an ingest container it would call as ingest and be
refused. The registration is the one `carbon up` makes (service_kit.partner_registration: partner "community-centre",
community behaviours and those of the region's catalog, this region only), idempotent by its request id: running it
again prints
the same secret. The ops API needs that secret as CARBON_SECRET_COMMUNITY_PARTNER_<region> (deploy/README.md); the
output is the secret alone, for `$(...)`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from service_kit.partner_registration import register_community_partners
from service_kit.settings import Settings
from service_kit.topology import RegionEntry, Registry

NATIONAL_REGION = "000000"


def _registered_ingest(region_code: str, env: Mapping[str, str]) -> str:
    """The region's ingest address in the registry CARBON_REGISTRY_FILE names, or "" if there is none."""
    registry_file = env.get("CARBON_REGISTRY_FILE", "")
    if not registry_file:
        return ""
    for region in Registry.load(Path(registry_file)).regions:
        if region.region_code == region_code:
            return region.ingest_address
    return ""


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", required=True, help="the region code whose ingest registers the partner")
    parser.add_argument("--ingest", default="", help="the region's ingest HOST:PORT (default: from the registry)")
    args = parser.parse_args(argv)
    if len(args.region) != 6 or not args.region.isdigit() or args.region == NATIONAL_REGION:
        print(f"community_partner: a 6-digit region code is needed, got {args.region!r}", file=sys.stderr)
        return 2
    ingest = args.ingest or _registered_ingest(args.region, env)
    if not ingest:
        print(f"community_partner: region {args.region} is not in CARBON_REGISTRY_FILE; pass --ingest", file=sys.stderr)
        return 2
    region = RegionEntry(args.region, "", "", "", ingest_address=ingest, ledger_address="", rewards_address="")
    try:
        operator = Settings.from_env("ops_api", env)
        secrets = register_community_partners(Registry(gateway_address="", regions=[region]), operator)
    except grpc.RpcError as error:
        print(f"community_partner: {ingest}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(secrets[args.region], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
