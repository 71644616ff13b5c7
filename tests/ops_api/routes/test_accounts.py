"""Accounts: opened at a community centre, found masked, and the roles and regions around them."""

from __future__ import annotations

from identity_svc.domain.real_name import id_check_char
from tests.ops_api.ops_support import Ops

SAMPLE_OTHER_ID = "11010519491231002X"


def test_community_staff_opens_an_account_at_their_centre_masked(ops: Ops) -> None:
    account = ops.open_account("zj-staff", "330000")
    found = ops.get("viewer", f"/v1/accounts/{account}").json()["account"]
    assert found["opened_via"] == "CHANNEL_COMMUNITY_CENTRE"
    assert "*" in found["masked_id_number"] and "*" in found["masked_phone_number"]


def test_account_is_found_by_phone_in_every_region_masked(ops: Ops) -> None:
    account = ops.open_account("bj-staff", "110000", consent=False)
    phone = f"139{ops.last_person:08d}"
    found = ops.get("viewer", "/v1/accounts/search", phone_number=phone).json()["accounts"]
    assert [a["account_number"] for a in found] == [account]
    assert phone not in str(found)


def test_community_staff_cannot_touch_another_regions_account(ops: Ops) -> None:
    beijing = ops.open_account("bj-staff", "110000")
    for response in (
        ops.get("zj-staff", f"/v1/accounts/{beijing}/balance"),
        ops.plant_trees(beijing, who="zj-staff"),
        ops.post("zj-staff", "/v1/accounts", {"region_code": "110000", "name": "李", "id_number": "11010519491231002X",
                                              "phone_number": "13800000000"}),
    ):  # fmt: skip
        assert response.status_code == 403, response.text
        assert response.json()["reason"] == "STAFF_REGION_MISMATCH"


def test_viewer_cannot_mutate(ops: Ops) -> None:
    account = ops.open_account()
    for path, body in (
        (f"/v1/accounts/{account}/community-events", {"behaviour": "tree_planting"}),
        (f"/v1/accounts/{account}/redemptions", {"reward_id": "museum-free-reservation"}),
        ("/v1/adjustments", {"account_number": account, "amount_points": 5, "reason": "test"}),
        ("/v1/regions/330000/expiry-sweeps", {}),
    ):
        response = ops.post("viewer", path, body)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["reason"] == "ROLE_NOT_ALLOWED"


def test_the_counter_opens_a_minors_account_with_the_guardian_present(ops: Ops) -> None:
    guardian = ops.open_account("zj-staff", "330000", consent=False)
    first17 = "33010620150301" + f"{next(ops.people) % 1000:03d}"
    child = {"region_code": "330000", "name": "王小明", "id_number": first17 + id_check_char(first17),
             "phone_number": "13900000014"}  # fmt: skip
    alone = ops.post("zj-staff", "/v1/accounts", child)
    assert alone.status_code == 409 and alone.json()["reason"] == "GUARDIAN_REQUIRED", alone.text
    opened = ops.post("zj-staff", "/v1/accounts", {**child, "guardian_account_number": guardian})
    assert opened.status_code == 201, opened.text
    account = opened.json()["account"]
    assert account["minor"] and account["guardian_account_number"] == guardian
    number = account["account_number"]
    without = ops.post("zj-staff", f"/v1/accounts/{number}/consents", {"category": "TRANSIT", "grant": True})
    assert without.status_code == 403 and without.json()["reason"] == "GUARDIAN_NOT_ACTING", without.text
    body = {"category": "TRANSIT", "grant": True, "guardian_account_number": guardian}
    granted = ops.post("zj-staff", f"/v1/accounts/{number}/consents", body)
    assert granted.status_code == 200 and granted.json()["consent"]["guardian_account_number"] == guardian


def test_the_counter_corrects_a_phone_number_after_checking_the_id_card(ops: Ops) -> None:
    account = ops.open_account("zj-staff", "330000", consent=False)
    person = ops.last_person
    first17 = f"33010619{70 + person % 30}0{person % 9 + 1}1{person % 9 + 1}{person % 1000:03d}"
    id_number = first17 + id_check_char(first17)
    path = f"/v1/accounts/{account}/corrections"
    wrong = ops.post("zj-staff", path, {"id_number": SAMPLE_OTHER_ID, "phone_number": "13700000001"})
    assert wrong.status_code == 409 and wrong.json()["reason"] == "REVERIFICATION_FAILED", wrong.text
    fixed = ops.post("zj-staff", path, {"id_number": id_number, "phone_number": "13700000001"})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["account"]["masked_phone_number"] == "137****0001"
    assert id_number not in fixed.text and "13700000001" not in fixed.text
