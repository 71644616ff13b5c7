"""The web console and the API's own docs pages, every asset served from this process (no CDN: ADR 0801)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
VENDOR = "/console/vendor"

router = APIRouter(include_in_schema=False)
# The console loads nothing from anywhere else, and the browser is told to hold it to that: a page that tried to
# reach a CDN (or had script injected) is refused by the browser, not only by review. ECharts and the pages set
# inline styles; scripts come from this origin only.
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# Swagger UI starts from an inline script; ReDoc runs a worker from a blob and would fetch its footer logo from
# its CDN, which the policy stops (the logo hides itself when it cannot load).
DOCS_HEADERS = {
    **CONSOLE_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class ConsoleFiles(StaticFiles):
    """The console's static files, each answered with CONSOLE_HEADERS."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(CONSOLE_HEADERS)
        return response


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="carbon-account ops API",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/favicon.svg",
        # Swagger UI would send the document to a public validator for its badge: nothing leaves this machine.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers.update(DOCS_HEADERS)
    return page


@router.get("/redoc")
def redoc() -> HTMLResponse:
    page = get_redoc_html(
        openapi_url="/openapi.json",
        title="carbon-account ops API",
        redoc_js_url=f"{VENDOR}/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR}/favicon.svg",
        with_google_fonts=False,
    )
    page.headers.update(DOCS_HEADERS)
    return page


def mount_console(app: FastAPI) -> None:
    """The console's pages at /console/, /docs and /redoc, and / sending a browser to the console."""
    app.include_router(router)
    app.mount("/console", ConsoleFiles(directory=CONSOLE_DIR, html=True), name="console")
