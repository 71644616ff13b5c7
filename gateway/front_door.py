"""Who is calling, and may they call now: authentication (mTLS common name or API key) and the per-caller rate
limit, in one place for every method the gateway serves."""

from __future__ import annotations

import grpc

from gateway.callers import Caller, GatewayConfig
from service_kit import tls
from service_kit.errors import ResourceExhausted
from service_kit.ratelimit import Limiter


class FrontDoor:
    def __init__(self, config: GatewayConfig, limiter: Limiter) -> None:
        self.config = config
        self.limiter = limiter

    def caller(self, context: grpc.ServicerContext) -> Caller:
        """The authenticated caller; RESOURCE_EXHAUSTED / RATE_LIMITED when its bucket is empty."""
        caller = self.config.authenticate(list(context.invocation_metadata() or []), tls.peer_common_name(context))
        limit = self.config.rate_limit_of(caller)
        if not self.limiter.allow(caller.caller_id, limit.rate_per_s, limit.burst):
            raise ResourceExhausted(
                "RATE_LIMITED",
                f"caller {caller.caller_id} is over its rate limit ({limit.rate_per_s:g}/s); back off and retry",
                {"caller": caller.caller_id, "rate_per_s": f"{limit.rate_per_s:g}"},
            )
        return caller
