"""Staff rules: what a new staff user must name, what each role may do, when a token opens the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ops_api.domain.staff import Role, Staff, may_be_token, new_staff_role, new_token, token_usable
from ops_api.problems import Problem

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_community_staff_must_name_their_region_and_centre_and_others_must_not() -> None:
    assert new_staff_role("zj-staff", "community_staff", "330000", "zj-gongshu-1") is Role.COMMUNITY_STAFF
    for user_id, role, region, centre, field in [
        ("Bad Id", "viewer", "", "", "user_id"),
        ("ok", "superuser", "", "", "role"),
        ("ok", "community_staff", "33", "zj-1", "region_code"),
        ("ok", "community_staff", "330000", "", "centre_id"),
        ("ok", "operator", "330000", "", "region_code"),
    ]:
        with pytest.raises(Problem) as caught:
            new_staff_role(user_id, role, region, centre)
        assert (caught.value.status, caught.value.metadata["field"]) == (422, field)


def test_community_staff_act_only_for_their_own_region_and_roles_are_checked() -> None:
    staff = Staff(user_id="zj-staff", role=Role.COMMUNITY_STAFF, region_code="330000", centre_id="zj-1")
    staff.require_region("330000")
    with pytest.raises(Problem) as caught:
        staff.require_region("110000")
    assert (caught.value.status, caught.value.reason) == (403, "STAFF_REGION_MISMATCH")
    with pytest.raises(Problem) as refused:
        staff.require(Role.OPERATOR, Role.ADMIN)
    assert (refused.value.status, refused.value.reason) == (403, "ROLE_NOT_ALLOWED")
    Staff(user_id="op1", role=Role.OPERATOR).require_region("110000")


def test_a_token_opens_the_api_until_it_is_revoked_or_expires_or_its_user_is_inactive() -> None:
    assert token_usable(NOW, None, None, user_active=True)
    assert token_usable(NOW, NOW + timedelta(seconds=1), None, user_active=True)
    assert not token_usable(NOW, NOW, None, user_active=True)
    assert not token_usable(NOW, None, NOW, user_active=True)
    assert not token_usable(NOW, None, None, user_active=False)


def test_only_tokens_of_ours_are_looked_up() -> None:
    assert may_be_token(new_token())
    assert not may_be_token("nope") and not may_be_token("cops_" + "x" * 300)
