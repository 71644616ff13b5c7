"""`python -m ops_api` serving: the app under uvicorn, announcing READY once it listens."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from ops_api.app import create_app
from ops_api.context import build_context, open_engine
from ops_api.settings import SERVICE, OpsSettings
from service_kit import logs, telemetry

DEFAULT_PORT = 18049
# Probes call the liveness route many times a minute; as traces they would outnumber the requests.
UNTRACED_PATHS = "/healthz"


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server that says READY once it listens: announced earlier, a client that starts calling at READY
    (the embedded system's start-up table, a test) can find the port still closed."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._announce()


def serve(settings: OpsSettings) -> int:
    """Settings -> database (migrated) -> clients -> app -> uvicorn, until it is stopped."""
    engine = open_engine(settings)
    context = build_context(settings, engine)
    port = settings.base.port or DEFAULT_PORT
    app = create_app(context)
    telemetry.instrument_http_app(app, excluded_paths=UNTRACED_PATHS)
    # log_config=None: uvicorn's loggers go through the root handler (JSON lines), its access log included.
    config = uvicorn.Config(app, host=settings.base.host, port=port, log_config=None, access_log=True, use_colors=False)
    address = f"{settings.base.host}:{port}"
    server = AnnouncingServer(config, lambda: logs.announce_ready(settings.base, SERVICE, "000000", address))
    try:
        server.run()
    finally:
        context.close()
        engine.dispose()
    return 0
