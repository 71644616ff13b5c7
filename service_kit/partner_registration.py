"""The data partners `carbon up` and the deploy scripts register in each region's ingest: the community-centre partner
the ops API submits counter events as, and the demo partner. Partner administration is the ops API's (the access
table): these calls are made as it (`operator`).

Registration is idempotent by request id, so ingest answers a later start with the first registration; what the
community partner may report then follows the region's catalog through UpdatePartnerBehaviours (ADR 0417), so an
installation registered before its catalog offered a counter behaviour gains it on its next start.
"""

from __future__ import annotations

from typing import Any

from service_kit.channels import open_channel
from service_kit.settings import Settings
from service_kit.topology import Registry

COMMUNITY_PARTNER_ID = "community-centre"
# What every region's counter records.
COMMUNITY_BEHAVIOURS = ("tree_planting", "sorting_supervisor_day")
# What a counter records only where the region's catalog offers it (recycling: Guangzhou's catalog today).
COMMUNITY_CATALOG_BEHAVIOURS = ("recycling_kg",)
CATALOG_PAGE_SIZE = 500


def register_community_partners(registry: Registry, operator: Settings | None) -> dict[str, str]:
    """Registers the community-centre data partner in every region's ingest and allows it the counter behaviours its
    region's catalog offers; returns its signing secret by region."""
    from carbon.ingest.v1 import ingest_service_pb2 as ingest_pb

    secrets_by_region = register_partner(
        registry,
        COMMUNITY_PARTNER_ID,
        "Community centres (ops counter)",
        ingest_pb.PARTNER_KIND_COMMUNITY_CENTRE,
        COMMUNITY_BEHAVIOURS,
        operator,
    )
    allow_catalog_behaviours(registry, operator)
    return secrets_by_region


def allow_catalog_behaviours(registry: Registry, operator: Settings | None) -> dict[str, list[str]]:
    """Adds to the community partner the counter behaviours each region's catalog offers and it lacks (never removes
    one an admin added); the behaviours it may report by region afterwards.

    The change's request id names the resulting list, so a restart repeats no change and does not undo a later one
    an admin made."""
    from carbon.ingest.v1 import ingest_service_pb2 as ingest_pb
    from carbon.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc

    allowed: dict[str, list[str]] = {}
    for region in registry.regions:
        with open_channel(region.ingest_address, operator) as channel:
            stub = ingest_grpc.IngestServiceStub(channel)
            offered = _catalog(stub, region.region_code)
            partner = stub.GetPartner(ingest_pb.GetPartnerRequest(partner_id=COMMUNITY_PARTNER_ID), timeout=10).partner
            current = set(partner.allowed_behaviours)
            wanted = current | {code for code in COMMUNITY_CATALOG_BEHAVIOURS if code in offered}
            if wanted != current:
                listed = sorted(wanted)
                request = ingest_pb.UpdatePartnerBehavioursRequest(
                    request_id=f"carbon-up:{COMMUNITY_PARTNER_ID}:behaviours:{','.join(listed)}"[:128],
                    partner_id=COMMUNITY_PARTNER_ID,
                    allowed_behaviours=listed,
                    reason="the region's catalog offers a counter behaviour the community partner lacked",
                )
                partner = stub.UpdatePartnerBehaviours(request, timeout=10).partner
            allowed[region.region_code] = list(partner.allowed_behaviours)
    return allowed


def _catalog(stub: Any, region_code: str) -> set[str]:
    """The behaviour codes the region's catalog offers (national ones and the region's own)."""
    from carbon.ingest.v1 import ingest_service_pb2 as ingest_pb

    codes: set[str] = set()
    token = ""
    while True:
        request = ingest_pb.ListBehavioursRequest(
            region_code=region_code, page_size=CATALOG_PAGE_SIZE, page_token=token
        )
        page = stub.ListBehaviours(request, timeout=10)
        codes.update(behaviour.code for behaviour in page.behaviours)
        token = page.next_page_token
        if not token:
            return codes


def register_partner(
    registry: Registry,
    partner_id: str,
    name: str,
    kind: int,
    behaviours: tuple[str, ...],
    operator: Settings | None,
) -> dict[str, str]:
    """Registers one data partner in every region's ingest (idempotent by request id); its secret by region."""
    from carbon.ingest.v1 import ingest_service_pb2 as ingest_pb
    from carbon.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc

    secrets_by_region: dict[str, str] = {}
    for region in registry.regions:
        partner = ingest_pb.Partner(
            partner_id=partner_id,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            allowed_behaviours=list(behaviours),
            allowed_regions=[region.region_code],
            rate_limit_per_second=100,
        )
        with open_channel(region.ingest_address, operator) as channel:
            response = ingest_grpc.IngestServiceStub(channel).RegisterPartner(
                ingest_pb.RegisterPartnerRequest(request_id=f"carbon-up:{partner_id}", partner=partner),
                timeout=10,
            )
        secrets_by_region[region.region_code] = response.secret
    return secrets_by_region
