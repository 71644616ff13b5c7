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

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.identity.v1 import identity_service_pb2 as idpb
from carbon.ingest.v1 import ingest_service_pb2 as ipb
from gateway.service.personal_data_export import document_chunks
from service_kit.partner_signing import sign_request
from service_kit.status import error_details
from service_kit.wire import to_timestamp
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, id_number, metadata, refusal, wait_for
from tests.gateway.service.test_redeem_anywhere import redeem_anywhere

SCHEMA = json.loads(
    (Path(__file__).parents[3] / "docs/contract/personal-data-export.schema.json").read_text(encoding="utf-8")
)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path, ["330000", "110000"], rewards=True, ingest=True, ledgers_in_process=True)
    partner = federation.ingest("110000").RegisterPartner(
        ipb.RegisterPartnerRequest(
            request_id="reg-bus-co",
            partner=ipb.Partner(
                partner_id="bus-co",
                name="bus-co",
                kind=ipb.PARTNER_KIND_TRANSIT_OPERATOR,
                allowed_behaviours=["transit_trip"],
                allowed_regions=["110000"],
            ),
        ),
        timeout=10,
    )
    federation.partner_secret = partner.secret
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


def ride(fed: Federation, account: str, event_id: str) -> None:
    """A bus trip an hour ago in Beijing, with the person's consent to transit data from a day before."""
    transit = common_pb2.DATA_CATEGORY_TRANSIT
    fed.identity("110000").GrantConsent(
        idpb.GrantConsentRequest(
            request_id=f"transit-{account}", account_number=account, category=transit,
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM, recorded_by="alipay",
            effective_at=to_timestamp(datetime.now(UTC) - timedelta(days=1)),
        ),
        timeout=10,
    )  # fmt: skip
    event = ipb.Event(
        event_id=event_id, account=common_pb2.AccountRef(account_number=account), behaviour="transit_trip",
        quantity_milli=1_000, occurred_at=to_timestamp(datetime.now(UTC) - timedelta(hours=1)), region_code="110000",
    )  # fmt: skip
    request = sign_request(ipb.SubmitEventsRequest(partner_id="bus-co", events=[event]), "k1", fed.partner_secret)
    [result] = fed.ingest("110000").SubmitEvents(request, timeout=10).results
    assert result.outcome == ipb.EVENT_OUTCOME_ACCEPTED, result
    # Ingest credits the ledger after it answers: the trip's points are in the statement once it has.
    wait_for(lambda: fed.balance("110000", account).total_points == result.points, what="the trip's credit")


def active_person(fed: Federation, name: str, request_id: str) -> tuple[str, str]:
    """A person with accounts in Zhejiang and Beijing who earned in Zhejiang and redeemed a Beijing bus pass with
    those points: a transfer to Beijing, a statement there and a voucher."""
    zj, bj = fed.open_person(["330000", "110000"], name=name, opened_at=datetime.now(UTC) - timedelta(days=3))
    ride(fed, bj, f"{request_id}-trip")
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
    assert {consent["category"] for consent in document["consents"]} == {
        "DATA_CATEGORY_CROSS_REGION_SHARING",
        "DATA_CATEGORY_TRANSIT",
    }
    [event] = document["events"]
    assert (event["event_id"], event["behaviour"], event["partner_id"]) == ("ra-self-trip", "transit_trip", "bus-co")
    assert int(event["points"]) > 0
    amounts = sorted(int(entry["amount_points"]) for entry in document["statement"])
    assert amounts == [-12_000, int(event["points"]), 500, 12_000]
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
    for absent in (other_zj, other_bj, "李", "张三", "ra-other-trip"):
        assert absent not in text


def test_only_the_persons_own_platform_or_an_operator_may_export(fed: Federation) -> None:
    _, bj = active_person(fed, "张三", "ra-only")
    request = gw.ExportPersonalDataRequest(account_number=bj)
    unbound = refusal(lambda: fed.gateway().ExportPersonalData(request, metadata=metadata("bj"), timeout=30))
    assert unbound[:2] == (grpc.StatusCode.PERMISSION_DENIED, "PLATFORM_NOT_BOUND")
    elsewhere = refusal(lambda: fed.gateway().ExportPersonalData(request, metadata=metadata("zj"), timeout=30))
    assert elsewhere[:2] == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_REGION_MISMATCH")
    assert export(fed, bj, caller="ops")["account_number"] == bj


def test_a_home_region_that_does_not_answer_is_unavailable_naming_it_with_retry_advice(fed: Federation) -> None:
    account = fed.open_account("110000")
    fed.kill_ledger("110000")
    with pytest.raises(grpc.RpcError) as caught:
        export(fed, account)
    details = error_details(caught.value)
    assert (details.code, details.reason, details.metadata["region"]) == (
        grpc.StatusCode.UNAVAILABLE,
        "REGION_UNAVAILABLE",
        "110000",
    )
    assert details.retry_delay is not None and details.retry_delay.total_seconds() > 0


def test_the_streamed_export_is_the_same_document_in_pieces(fed: Federation) -> None:
    account = fed.open_account("110000")
    pieces = list(
        fed.gateway().StreamPersonalData(
            gw.StreamPersonalDataRequest(account_number=account), metadata=metadata("bj-alipay"), timeout=30
        )
    )
    assert [piece.last for piece in pieces] == [False] * (len(pieces) - 1) + [True]
    document = b"".join(piece.chunk for piece in pieces)
    assert pieces[-1].total_bytes == len(document)
    streamed = json.loads(document)
    unary = export(fed, account)
    assert {**streamed, "exported_at": ""} == {**unary, "exported_at": ""}
    jsonschema.validate(streamed, SCHEMA)


def test_a_document_is_cut_into_pieces_of_at_most_the_chunk_size() -> None:
    pieces = list(document_chunks(b"abcdefg", size=3))
    assert pieces == [(b"abc", False, 0), (b"def", False, 0), (b"g", True, 7)]
    assert list(document_chunks(b"abcdef", size=3))[-1] == (b"def", True, 6)
    assert list(document_chunks(b"", size=3)) == [(b"", True, 0)]
