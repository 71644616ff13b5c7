"""Admission at the gateway's front door: who is calling (the verified client certificate's name or an API key) and
whether they may call now (a token bucket per caller), in one place for every method the gateway serves."""

from __future__ import annotations

from gateway.domain.callers import Caller, CallMetadata, GatewayConfig
from service_kit.errors import ResourceExhausted
from service_kit.ratelimit import Limiter


class Admission:
    def __init__(self, config: GatewayConfig, limiter: Limiter) -> None:
        self.config = config
        self.limiter = limiter

    def admit(self, metadata: CallMetadata, common_name: str) -> Caller:
        """The authenticated caller; RESOURCE_EXHAUSTED / RATE_LIMITED when its bucket is empty."""
        caller = self.config.authenticate(metadata, common_name)
        limit = self.config.rate_limit_of(caller)
        if not self.limiter.allow(caller.caller_id, limit.rate_per_s, limit.burst):
            raise ResourceExhausted(
                "RATE_LIMITED",
                f"caller {caller.caller_id} is over its rate limit ({limit.rate_per_s:g}/s); back off and retry",
                {"caller": caller.caller_id, "rate_per_s": f"{limit.rate_per_s:g}"},
            )
        return caller
