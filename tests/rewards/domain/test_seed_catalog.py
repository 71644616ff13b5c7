"""The reviewed seed catalog: every benefit of the domain, local ones locked to their region."""

from __future__ import annotations

from rewards_svc.domain.seed_catalog import load_catalog


def test_the_seed_catalog_has_every_benefit_of_the_domain_with_local_ones_locked_to_their_region() -> None:
    catalog = load_catalog()
    by_id = {item.reward_id: item for item in catalog.rewards}
    assert len(by_id) == 10
    assert by_id["beijing-bus-pass"].region_codes == ("110000",)
    assert by_id["shanghai-health-check"].price_points == 7200
    assert by_id["shanghai-health-check"].face_value_cents == 30_000
    assert by_id["chimelong-half-price"].region_codes == ("440100",)
    assert by_id["transit-topup"].divisible and by_id["transit-topup"].price_points == 100
    assert {(p.project_id, p.points_per_unit) for p in catalog.projects} == {("trees", 1000), ("childrens-books", 5000)}
