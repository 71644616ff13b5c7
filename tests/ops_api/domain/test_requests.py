"""Request ids: the caller's, checked, or a fresh one; downstream keys scoped to the staff member."""

from __future__ import annotations

import re

import pytest

from ops_api.domain.requests import compact_key, idempotency_key, request_id_from_header
from ops_api.domain.staff import Role, Staff
from ops_api.problems import Problem

STAFF = Staff(user_id="op1", role=Role.OPERATOR)


def test_a_missing_request_id_is_made_and_a_malformed_one_refused() -> None:
    assert request_id_from_header("abc-1") == "abc-1"
    assert re.fullmatch(r"[0-9a-f]{32}", request_id_from_header(None))
    with pytest.raises(Problem) as caught:
        request_id_from_header("bad id!")
    assert (caught.value.status, caught.value.metadata["field"]) == (400, "X-Request-Id")


def test_downstream_keys_are_scoped_to_the_staff_member() -> None:
    assert idempotency_key(STAFF, "r1") == "ops:op1:r1"
    compact = compact_key(STAFF, "r1")
    assert re.fullmatch(r"ops-[0-9a-f]{40}", compact) and compact != compact_key(STAFF, "r2")
