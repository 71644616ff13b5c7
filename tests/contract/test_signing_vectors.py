"""The batch signature as docs/contract/signing.md specifies it: every known-answer vector is reproduced by the Python
reference (service_kit.partner_signing), by ingest's one-pass encoder (what the server verifies) and by the
dependency-free Node implementation written from the page (examples/node/signing.mjs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc import wire
from service_kit.partner_signing import DOMAIN_TAG, request_canonical_bytes, sign, sign_request, signature_matches

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs/contract/signing.md"
VECTORS_FILE = ROOT / "docs/contract/signing-vectors.json"
NODE_SCRIPT = ROOT / "examples/node/signing.mjs"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
NAMES = [vector["name"] for vector in VECTORS]


def _request(vector: dict[str, Any]) -> pb.SubmitEventsRequest:
    return json_format.ParseDict(vector["request"], pb.SubmitEventsRequest())


@pytest.mark.parametrize("vector", VECTORS, ids=NAMES)
def test_the_reference_encoder_reproduces_the_vector(vector: dict[str, Any]) -> None:
    canonical = request_canonical_bytes(_request(vector))

    assert canonical.hex() == vector["canonical_hex"]
    assert sign(vector["secret"].encode("utf-8"), canonical) == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=NAMES)
def test_ingests_one_pass_encoder_reproduces_the_vector(vector: dict[str, Any]) -> None:
    _events, canonical = wire.batch_events(_request(vector))

    assert canonical.hex() == vector["canonical_hex"]


@pytest.mark.parametrize("vector", VECTORS, ids=NAMES)
def test_a_partner_signing_the_vector_sends_the_expected_signature_and_ingest_accepts_it(
    vector: dict[str, Any],
) -> None:
    request = _request(vector)

    signed = sign_request(request, request.key_id, vector["secret"])

    assert signed.signature == vector["signature"]
    assert signature_matches(vector["secret"].encode("utf-8"), bytes.fromhex(vector["canonical_hex"]), signed.signature)


def test_a_changed_byte_or_another_secret_does_not_verify() -> None:
    vector = VECTORS[0]
    canonical = bytearray.fromhex(vector["canonical_hex"])
    canonical[-1] ^= 1

    assert not signature_matches(vector["secret"].encode("utf-8"), bytes(canonical), vector["signature"])
    assert not signature_matches(b"another secret", bytes.fromhex(vector["canonical_hex"]), vector["signature"])


def test_the_vectors_cover_what_the_spec_promises() -> None:
    requests = [_request(vector) for vector in VECTORS]
    events = [event for request in requests for event in request.events]
    texts = [text for request in requests for text in (request.partner_id, request.batch_id)] + [
        text
        for event in events
        for text in (event.event_id, event.evidence_ref, event.account.binding.platform_user_id)
    ]

    assert {event.account.WhichOneof("ref") for event in events} == {None, "account_number", "binding", "phone_number"}
    assert any(not event.HasField("occurred_at") for event in events)
    assert any(event.occurred_at.seconds < 0 and event.occurred_at.nanos for event in events)
    assert any(not request.events for request in requests)
    assert any(len(text.encode("utf-8")) > len(text) for text in texts)
    assert any(len(char.encode("utf-8")) == 4 for text in texts for char in text)
    assert any(not vector["secret"].isascii() for vector in VECTORS)
    assert {2**63 - 1, -1} <= {event.quantity_milli for event in events}
    assert any(event.quantity_milli > 2**53 for event in events)
    assert all(bytes.fromhex(vector["canonical_hex"]).startswith(DOMAIN_TAG) for vector in VECTORS)


def test_the_spec_lists_every_field_of_event_in_field_number_order() -> None:
    table = SPEC.read_text(encoding="utf-8").split("<!-- event-fields -->", 1)[1].split("\n\n", 1)[0]
    listed = [(int(number), name) for number, name in re.findall(r"^\| (\d+) \| (\w+) \|", table, re.MULTILINE)]

    assert listed == [(field.number, field.name) for field in pb.Event.DESCRIPTOR.fields]


def test_the_annotated_dump_in_the_spec_is_the_first_vector() -> None:
    marker = "<!-- annotated-dump: account-number -->"
    block = SPEC.read_text(encoding="utf-8").split(marker, 1)[1].split("```")[1]
    dumped = "".join(line.split("#", 1)[0].strip() for line in block.splitlines())

    assert dumped == next(vector["canonical_hex"] for vector in VECTORS if vector["name"] == "account-number")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        message = "no `node` on PATH: the Node implementation of the signing spec was not checked"
        if os.environ.get("CARBON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"CARBON_REQUIRE_SERVICES=1 but {message}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: {message}")
    return node


def _run_node(vectors: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_node(), str(NODE_SCRIPT), str(vectors)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_node_implementation_reproduces_every_vector() -> None:
    run = _run_node(VECTORS_FILE)

    assert run.returncode == 0, run.stdout + run.stderr
    assert [line.split()[1] for line in run.stdout.splitlines() if line.startswith("ok ")] == NAMES


def test_the_node_implementation_names_each_vector_it_does_not_reproduce(tmp_path: Path) -> None:
    document = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    document["vectors"][0]["signature"] = "0" * 64
    document["vectors"][1]["request"]["batchId"] += "x"
    spoiled = tmp_path / "spoiled.json"
    spoiled.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    run = _run_node(spoiled)

    assert run.returncode == 1, run.stdout + run.stderr
    assert [line.split()[1].rstrip(":") for line in run.stdout.splitlines() if line.startswith("FAIL")] == NAMES[:2]
