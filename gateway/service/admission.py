"""Admission at the gateway's front door, in one place for every method the gateway serves: who is calling (the
verified client certificate's name or an API key), whether that caller may use this method, and whether it may call
now (a token bucket per caller)."""

from __future__ import annotations

from datetime import timedelta

from gateway.domain.callers import Caller, CallMetadata, GatewayConfig
from service_kit.clock import Clock, system_clock
from service_kit.errors import ResourceExhausted
from service_kit.ratelimit import Limiter


class Admission:
    def __init__(self, config: GatewayConfig, limiter: Limiter, clock: Clock = system_clock) -> None:
        self.config = config
        self.limiter = limiter
        self.clock = clock

    def admit(self, metadata: CallMetadata, common_name: str, method: str) -> Caller:
        """The authenticated caller, allowed `method` ("/pkg.Service/Method"); RESOURCE_EXHAUSTED / RATE_LIMITED when
        its bucket is empty."""
        caller = self.config.authenticate(metadata, common_name, self.clock())
        caller.require_method(method)
        limit = self.config.rate_limit_of(caller)
        if not self.limiter.allow(caller.caller_id, limit.rate_per_s, limit.burst):
            raise ResourceExhausted(
                "RATE_LIMITED",
                f"caller {caller.caller_id} is over its rate limit ({limit.rate_per_s:g}/s); back off and retry",
                {"caller": caller.caller_id, "rate_per_s": f"{limit.rate_per_s:g}"},
                # RetryInfo: the time one token takes to refill.
                retry_delay=timedelta(seconds=1 / limit.rate_per_s if limit.rate_per_s > 0 else 1),
            )
        return caller
