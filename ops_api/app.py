"""The FastAPI application: routers, request ids, problem details for every error, health."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ops_api.context import OpsContext
from ops_api.domain.requests import request_id_from_header
from ops_api.openapi import problem_responses, type_router, typed_openapi
from ops_api.problems import HTTP_STATUS, Problem
from ops_api.routes import (
    accounts,
    adjustments,
    books,
    campaigns,
    catalog,
    claims,
    counter,
    dashboard,
    federation,
    reminders,
    scoring,
    staff,
)
from ops_api.routes.console import mount_console
from service_kit import failures

PROBLEM_JSON = "application/problem+json"
DESCRIPTION = """Internal operations and community-centre staff: accounts (masked), balances, statements, lots,
community events, the points counter, catalog, behaviour rules, partners, four-eyes adjustments, expiry sweeps,
cross-region transfers, settlement, conservation and journal checks, statistics.

Authenticate with `Authorization: Bearer <token>`. Send `X-Request-Id` on mutations: it is their idempotency key.
Errors are RFC 9457 problem details (`application/problem+json`) with the services' reason codes."""

log = logging.getLogger("carbon.ops_api")


class Health(BaseModel):
    status: str = Field(description="SERVING while the process answers")


def create_app(context: OpsContext) -> FastAPI:
    app = FastAPI(
        title="carbon-account ops API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.ops = context

    @app.middleware("http")
    async def request_ids(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            request.state.request_id = request_id_from_header(request.headers.get("x-request-id"))
        except Problem as problem:
            request.state.request_id = ""
            return await handle_problem(request, problem)
        response = await call_next(request)
        response.headers["X-Request-Id"] = request.state.request_id
        return response

    app.add_exception_handler(Problem, handle_problem)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)

    @app.get(
        "/healthz",
        tags=["health"],
        summary="Liveness (no authentication)",
        operation_id="health",
        response_model=Health,
        responses=problem_responses(500),
    )
    def health() -> JSONResponse:
        return JSONResponse({"status": "SERVING"})

    for module in (
        *(accounts, counter, reminders, catalog, campaigns, scoring),
        *(books, adjustments, federation, claims, staff, dashboard),
    ):
        type_router(module.router)
        app.include_router(module.router)
    app.openapi = lambda: typed_openapi(app)  # type: ignore[method-assign]
    mount_console(app)
    return app


# --- every error as problem details -----------------------------------------------------------------------------------


def _response(problem: Problem, request: Request) -> JSONResponse:
    request_id = str(getattr(request.state, "request_id", ""))
    headers = {**problem.headers, "X-Request-Id": request_id} if request_id else problem.headers
    return JSONResponse(
        problem.body(request.url.path, request_id), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


async def handle_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return _response(error, request)


async def handle_validation(request: Request, error: Exception) -> JSONResponse:
    """A body, query or path that fails the API's own schema: 422, naming the first field at fault."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    field = ".".join(str(part) for part in first.get("loc", ()) if part not in {"body", "query", "path", "header"})
    message = str(first.get("msg", "invalid"))
    problem = Problem(422, "INVALID_ARGUMENT", f"{field or 'request'}: {message}", {"field": field or "request"})
    return _response(problem, request)


async def handle_http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    reason = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status_code, "HTTP_ERROR")
    problem = Problem(error.status_code, reason, str(error.detail), headers=error.headers)
    return _response(problem, request)


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    """The ops API's own database or Redis down is 503 with Retry-After (service_kit/failures.py), not a 500."""
    failure = failures.classify(error)
    if failure is not None:
        log.warning("request failed on infrastructure", extra={"path": request.url.path, "reason": failure.reason})
        delay = failure.retry_delay
        headers = {"Retry-After": str(max(1, math.ceil(delay.total_seconds())))} if delay is not None else {}
        status = HTTP_STATUS.get(failure.code, 503)
        return _response(Problem(status, failure.reason, failure.message, headers=headers), request)
    log.exception("unhandled error", extra={"path": request.url.path})
    return _response(Problem(500, "INTERNAL", "internal error; the failure was logged with its request id"), request)
