"""The FastAPI application: routers, request ids, problem details for every error, health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ops_api import problems
from ops_api.context import OpsContext, request_id_from_header
from ops_api.problems import Problem
from ops_api.routes import accounts, adjustments, books, catalog, counter, federation, scoring, staff

DESCRIPTION = """Internal operations and community-centre staff: accounts (masked), balances, statements, lots,
community events, the points counter, catalog, behaviour rules, partners, four-eyes adjustments, expiry sweeps,
cross-region transfers, settlement, conservation and journal checks, statistics.

Authenticate with `Authorization: Bearer <token>`. Send `X-Request-Id` on mutations: it is their idempotency key.
Errors are RFC 9457 problem details (`application/problem+json`) with the services' reason codes."""


def create_app(context: OpsContext) -> FastAPI:
    app = FastAPI(
        title="carbon-account ops API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url="/docs",
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
            return await problems.handle_problem(request, problem)
        response = await call_next(request)
        response.headers["X-Request-Id"] = request.state.request_id
        return response

    app.add_exception_handler(Problem, problems.handle_problem)
    app.add_exception_handler(RequestValidationError, problems.handle_validation)
    app.add_exception_handler(StarletteHTTPException, problems.handle_http)
    app.add_exception_handler(Exception, problems.handle_unexpected)

    @app.get("/healthz", tags=["health"], summary="Liveness (no authentication)")
    def health() -> JSONResponse:
        return JSONResponse({"status": "SERVING"})

    for module in (accounts, counter, catalog, scoring, books, adjustments, federation, staff):
        app.include_router(module.router)
    return app
