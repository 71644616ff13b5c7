from tests.ops_api.ops_support import Ops


def test_open_account_and_plant_trees(ops: Ops) -> None:
    account = ops.open_account()
    response = ops.plant_trees(account)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["points"] == 200
    balance = ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]
    assert balance["available_points"] == 200
