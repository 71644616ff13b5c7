"""Ingest's domain metrics: events by outcome and reason, and the CO2e and points of the accepted ones.

Counted once per submitted event as its submitter is answered (a repeat answered DUPLICATE counts as a duplicate,
its grams once, when first accepted). The instruments are OpenTelemetry's and cost next to nothing while telemetry
is off (service_kit/telemetry.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ingest_svc.domain.results import ACCEPTED, Result
from service_kit import telemetry


class IngestMetrics:
    def __init__(self, region_code: str) -> None:
        meter = telemetry.meter("carbon.ingest")
        self._region = region_code
        self._events = meter.create_counter("carbon.events", unit="{event}", description="events by outcome, reason")
        self._co2e = meter.create_counter("carbon.co2e", unit="g", description="CO2e avoided by accepted events")
        self._points = meter.create_counter("carbon.events.points", unit="{point}", description="points earned")

    def answered(self, partner_id: str, results: Iterable[Result]) -> None:
        by_outcome: Counter[tuple[str, str]] = Counter()
        grams = points = 0
        for result in results:
            by_outcome[(result.outcome, result.reason)] += 1
            if result.outcome == ACCEPTED:
                grams += result.co2e_grams
                points += result.points
        region = {"carbon.region": self._region}
        for (outcome, reason), count in by_outcome.items():
            self._events.add(count, {**region, "carbon.outcome": outcome, "carbon.reason": reason})
        if grams:
            self._co2e.add(grams, {**region, "carbon.partner": partner_id})
        if points:
            self._points.add(points, {**region, "carbon.partner": partner_id})
