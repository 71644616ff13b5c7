"""The copy of a person's data (PIPL art. 45, ADR 0208) through a real gateway over real region processes: it
validates against its documented schema, holds the account's statement, vouchers and transfers, and nothing of
anyone else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, id_number, metadata, refusal
from tests.gateway.service.test_redeem_anywhere import redeem_anywhere

SCHEMA = json.loads(
    (Path(__file__).parents[3] / "docs/contract/personal-data-export.schema.json").read_text(encoding="utf-8")
)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path, ["330000", "110000"], rewards=True)
    running = start_inprocess_gateway(federation)
    yield federation
    running.stop()
    federation.close()


def export(fed: Federation, account: str, caller: str = "bj-alipay") -> dict[str, Any]:
    response = fed.gateway().ExportPersonalData(
        gw.ExportPersonalDataRequest(account_number=account), metadata=metadata(caller), timeout=30
    )
    document: dict[str, Any] = json.loads(response.document_json)
    return document


def serial_of(document: dict[str, Any]) -> int:
    """The federation's number of the person, which their phone number ends with (138 and 8 digits)."""
    return int(document["account"]["masked_phone_number"][-4:])


def active_person(fed: Federation, name: str, request_id: str) -> tuple[str, str]:
    """A person with accounts in Zhejiang and Beijing who earned in Zhejiang and redeemed a Beijing bus pass with
    those points: a transfer to Beijing, a statement there and a voucher."""
    zj, bj = fed.open_person(["330000", "110000"], name=name)
    fed.earn("330000", zj, 15_000, earned_at=datetime.now(UTC) - timedelta(days=3))
    fed.earn("110000", bj, 500, earned_at=datetime.now(UTC) - timedelta(days=2))
    assert redeem_anywhere(fed, request_id, zj, bj).transfer.state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    return zj, bj


def test_the_export_validates_and_holds_the_persons_statement_vouchers_and_transfers(fed: Federation) -> None:
    zj, bj = active_person(fed, "张三", "ra-self")
    other_zj, other_bj = active_person(fed, "李四四", "ra-other")
    document = export(fed, bj)
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert document["account_number"] == bj
    assert document["account"]["masked_name"] == "张*"
    assert [binding["platform"] for binding in document["bindings"]] == ["alipay"]
    assert {consent["category"] for consent in document["consents"]} == {"DATA_CATEGORY_CROSS_REGION_SHARING"}
    amounts = sorted(int(entry["amount_points"]) for entry in document["statement"])
    assert amounts == [-12_000, 500, 12_000]
    assert [(voucher["reward_id"], voucher["account_number"]) for voucher in document["vouchers"]] == [
        ("beijing-bus-pass", bj)
    ]
    [transfer] = document["cross_region_transfers"]
    assert (transfer["from_account"], transfer["to_account"], transfer["amount_points"]) == (zj, bj, "12000")
    # Nothing of the other person (same region, same platform, the same kinds of activity), and no full value of
    # the person's own name, ID number or phone number (ADR 0208: the copy masks them as every read does).
    text = json.dumps(document, ensure_ascii=False)
    for person in (serial_of(document), serial_of(export(fed, other_bj))):
        assert id_number(person) not in text and f"138{person:08d}" not in text
    for absent in (other_zj, other_bj, "李", "张三"):
        assert absent not in text


def test_only_the_persons_own_platform_or_an_operator_may_export(fed: Federation) -> None:
    _, bj = active_person(fed, "张三", "ra-only")
    request = gw.ExportPersonalDataRequest(account_number=bj)
    unbound = refusal(lambda: fed.gateway().ExportPersonalData(request, metadata=metadata("bj"), timeout=30))
    assert unbound[:2] == (grpc.StatusCode.PERMISSION_DENIED, "PLATFORM_NOT_BOUND")
    elsewhere = refusal(lambda: fed.gateway().ExportPersonalData(request, metadata=metadata("zj"), timeout=30))
    assert elsewhere[:2] == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_REGION_MISMATCH")
    assert export(fed, bj, caller="ops")["account_number"] == bj
