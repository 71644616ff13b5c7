"""The OpenAPI document, typed throughout (ADR 0801): operation ids are the route functions' names (stable and
readable), every operation declares its response model (on the route) and the problem details it can answer with,
as application/problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from ops_api.problems import TITLES
from ops_api.schemas import Problem

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Every authenticated route: a malformed X-Request-Id, no or a bad token, input failing the schema, the rate limit,
# an unexpected failure.
EVERY_ROUTE = (400, 401, 422, 429, 500)
# Routes that call the services add their refusals and the ways a call can fail (ADR 0800's one mapping).
SERVICE_CALLS = (403, 404, 409, 501, 502, 503, 504)
# Staff and audit routes stay in the API's own database: refusals only.
OWN_DATABASE = (403, 404, 409)
LOCAL_TAGS = {"staff and audit"}
NO_REFUSALS = {"whoami"}


def problem_statuses(route: APIRoute) -> tuple[int, ...]:
    if route.name in NO_REFUSALS:
        return EVERY_ROUTE
    local = any(tag in LOCAL_TAGS for tag in route.tags)
    return tuple(sorted(EVERY_ROUTE + (OWN_DATABASE if local else SERVICE_CALLS)))


def type_router(router: APIRouter) -> None:
    """Names every operation of the router after its function and adds the problem responses it can answer with."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        route.operation_id = route.name
        for status, answer in problem_responses(*problem_statuses(route)).items():
            route.responses.setdefault(status, answer)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of problem details for the statuses."""
    return {
        status: {
            "description": TITLES.get(status, "Internal error"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
        }
        for status in statuses
    }


def typed_openapi(app: FastAPI) -> dict[str, Any]:
    """The document, made once: FastAPI's, with the Problem schema the problem responses refer to."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    app.openapi_schema = document
    return document
