"""The application: health without a token, problem details with the request id, bearer tokens checked."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc

from tests.ops_api.ops_support import Ops


def test_health_answers_without_a_token(ops: Ops) -> None:
    assert ops.client.get("/healthz").json() == {"status": "SERVING"}


def test_missing_token_is_a_401_problem_with_the_reason_and_request_id(ops: Ops) -> None:
    response = ops.client.get("/v1/me", headers={"X-Request-Id": "abc-1"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "abc-1"
    body = response.json()
    assert body["reason"] == "CREDENTIALS_MISSING" and body["status"] == 401 and body["request_id"] == "abc-1"
    assert {"type", "title", "detail", "instance"} <= set(body)


def test_unknown_token_is_refused(ops: Ops) -> None:
    response = ops.client.get("/v1/me", headers={"Authorization": "Bearer cops_nope"})
    assert response.status_code == 401 and response.json()["reason"] == "TOKEN_INVALID"


def test_the_database_down_is_a_503_with_retry_after_not_a_500(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    def database_down(*_args: object, **_kwargs: object) -> None:
        raise sqlalchemy.exc.OperationalError("SELECT", {}, psycopg.OperationalError("connection refused"))

    monkeypatch.setattr("ops_api.routes.dependencies.authenticate", database_down)
    response = ops.client.get("/v1/me", headers={"Authorization": "Bearer cops_any"})
    assert response.status_code == 503, response.text
    assert response.json()["reason"] == "DATABASE_UNAVAILABLE"
    assert int(response.headers["retry-after"]) >= 1
