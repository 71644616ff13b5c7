"""How a binding and who made it are shown: masked where personal."""

from __future__ import annotations

import pytest

from identity_svc.domain.bindings import bound_by, mask_identifier


@pytest.mark.parametrize(
    ("value", "masked"),
    [("2088001234", "20****34"), ("wx-77", "wx****77"), ("abcd", "****"), ("a", "****"), ("", "****")],
)
def test_identifiers_show_two_characters_at_each_end_at_most(value: str, masked: str) -> None:
    assert mask_identifier(value) == masked


def test_bound_by_prefers_the_gateways_caller_then_staff_then_the_service() -> None:
    service = "spiffe://carbon-account/national/ops-api"
    assert bound_by(service, "alipay-zj", "staff-0042") == "alipay-zj"
    assert bound_by(service, "", "staff-0042") == "staff:st****42"
    assert bound_by(service, "", "") == service
    assert bound_by("", "", "") == ""
