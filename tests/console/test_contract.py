"""The typed OpenAPI document and the console built on it: every operation typed with readable ids and its problem
responses, the console's generated types in step with the document and its JavaScript type-checked against them,
the vendored assets npm's own files, every page and asset served locally (no CDN)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ops_api.app import create_app
from tests.console.conftest import ROOT, require_node_packages

sys.path.insert(0, str(ROOT / "scripts"))
import console_types
import vendor_console

OPERATION_ID = re.compile(r"^[a-z][a-z_]{2,40}$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(None).openapi()  # type: ignore[arg-type]  # the document needs no running context


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(None)) as test_client:  # type: ignore[arg-type]  # static pages need no context
        yield test_client


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_operation_ids_are_the_readable_function_names(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if not OPERATION_ID.match(i)] == []
    assert {"search_accounts", "redeem", "use_voucher", "get_dashboard", "approve_adjustment", "whoami"} <= set(ids)


def test_every_operation_has_a_response_model_and_declares_its_problems(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert len(success) == 1, (method, path)
        schema = operation["responses"][success[0]]["content"]["application/json"]["schema"]
        assert "$ref" in schema, (method, path, schema)
        problems = {code for code, answer in operation["responses"].items() if not code.startswith("2")}
        for code in problems:
            content = operation["responses"][code]["content"]
            assert list(content) == ["application/problem+json"], (method, path, code)
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        expected = {"500"} if path == "/healthz" else {"400", "401", "422", "429", "500"}
        assert expected <= problems, (method, path, problems)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_proto_responses_are_typed_field_by_field(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    balance = schemas["Balance"]["properties"]
    assert balance["available_points"]["type"] == "integer"
    assert schemas["Voucher"]["properties"]["state"]["enum"][:2] == [
        "VOUCHER_STATE_UNSPECIFIED",
        "VOUCHER_STATE_ISSUED",
    ]
    assert set(schemas["Problem"]["required"]) >= {"status", "reason", "detail", "request_id"}


def test_console_types_match_the_document_and_the_pages_type_check() -> None:
    require_node_packages()
    assert console_types.TYPES.read_text(encoding="utf-8") == console_types.generated_types(), (
        "run scripts/console_types.py"
    )
    checked = console_types.type_check()
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_vendored_assets_are_the_npm_packages_files() -> None:
    require_node_packages()
    assert vendor_console.differing(ROOT / "node_modules") == []


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/console/"])
def test_pages_load_every_asset_from_this_process(client: TestClient, page: str) -> None:
    html = client.get(page).text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), html
    assets = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", html) + re.findall(r"""url: ?['"]([^'"]+)""", html)
    assert assets
    for asset in assets:
        url = asset if asset.startswith("/") else f"/console/{asset}"
        assert client.get(url).status_code == 200, url


def test_the_console_tells_the_browser_to_load_nothing_from_elsewhere(client: TestClient) -> None:
    policy = client.get("/console/").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert client.get("/console/app.js").headers["content-security-policy"] == policy
    for docs in ("/docs", "/redoc"):
        assert "img-src 'self' data:;" in client.get(docs).headers["content-security-policy"], docs
    assert "validatorUrl" in client.get("/docs").text


def test_the_root_opens_the_console(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (307, "/console/")
