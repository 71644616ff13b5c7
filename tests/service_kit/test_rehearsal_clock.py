"""The rehearsal clock: one offset shifts every service's clock, set from CARBON_CLOCK_OFFSET or `carbon up`, and
refused in production."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service_kit import clock
from service_kit.cli import build_parser, rehearsal_offset_variable
from service_kit.embedded import child_environment
from service_kit.runner import start_clock
from service_kit.settings import Settings, SettingsError
from service_kit.topology import plan


@pytest.fixture(autouse=True)
def real_time_afterwards() -> Iterator[None]:
    yield
    clock.set_rehearsal_offset(timedelta(0))


def test_offsets_are_written_with_a_sign_and_units() -> None:
    assert clock.parse_offset("+730d") == timedelta(days=730)
    assert clock.parse_offset("-2h30m") == -timedelta(hours=2, minutes=30)
    assert clock.parse_offset("1d12h5s") == timedelta(days=1, hours=12, seconds=5)
    assert clock.parse_offset("") == timedelta(0)
    for bad in ("730", "+d", "2 days", "1h1d", "+-1d"):
        with pytest.raises(ValueError, match="such as"):
            clock.parse_offset(bad)
    assert clock.parse_offset(clock.format_offset(-timedelta(days=3, seconds=7))) == -timedelta(days=3, seconds=7)


def test_the_variable_shifts_the_system_clock_of_the_process() -> None:
    settings = Settings.from_env("ledger_svc", {"CARBON_CLOCK_OFFSET": "+730d"})
    assert settings.clock_offset == timedelta(days=730)
    start_clock(settings)
    before = datetime.now(UTC)
    shifted = clock.system_clock()
    assert before + timedelta(days=730) <= shifted <= datetime.now(UTC) + timedelta(days=730)
    start_clock(Settings.from_env("ledger_svc", {}))
    before = datetime.now(UTC)
    assert before <= clock.system_clock() <= datetime.now(UTC)


def test_a_rehearsal_clock_is_refused_in_production() -> None:
    with pytest.raises(SettingsError, match="CARBON_ENVIRONMENT=production"):
        Settings.from_env("ledger_svc", {"CARBON_CLOCK_OFFSET": "+1d", "CARBON_ENVIRONMENT": "production"})
    assert Settings.from_env("ledger_svc", {"CARBON_ENVIRONMENT": "production"}).clock_offset == timedelta(0)
    with pytest.raises(SettingsError, match="CARBON_CLOCK_OFFSET"):
        Settings.from_env("ledger_svc", {"CARBON_CLOCK_OFFSET": "two days"})


def _up(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["up", *flags])


def test_carbon_up_takes_an_offset_or_a_start_instant_and_passes_it_to_every_child(tmp_path: Path) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert rehearsal_offset_variable(_up("--clock-offset", "+730d"), {}, now) == "+63072000s"
    start = _up("--rehearse-at", "2028-12-03T23:55:00+08:00")
    assert (
        clock.parse_offset(rehearsal_offset_variable(start, {}, now)) == datetime(2028, 12, 3, 15, 55, tzinfo=UTC) - now
    )
    assert rehearsal_offset_variable(_up(), {"CARBON_CLOCK_OFFSET": "-1h"}, now) == "-3600s"
    assert rehearsal_offset_variable(_up(), {}, now) == ""
    with pytest.raises(ValueError, match="production"):
        rehearsal_offset_variable(_up("--clock-offset", "+1d"), {"CARBON_ENVIRONMENT": "production"}, now)
    with pytest.raises(ValueError, match="not both"):
        rehearsal_offset_variable(_up("--clock-offset", "+1d", "--rehearse-at", "2028-01-01T00:00+08:00"), {}, now)
    registry = plan(["330000"], host="127.0.0.1", base_port=47000)
    for spec in registry.processes():
        if spec.service == "ops_api":  # its environment needs the gateway key carbon up makes; it reads the clock alike
            continue
        env = child_environment(spec, registry, tmp_path, {"CARBON_CLOCK_OFFSET": "+63072000s", "CARBON_X": "1"})
        assert env["CARBON_CLOCK_OFFSET"] == "+63072000s" and "CARBON_X" not in env
        assert (env.get("CARBON_LEDGER_SCHEDULER") == "1") == (spec.service == "ledger_svc")


def test_carbon_up_passes_the_event_following_timings_to_its_children(tmp_path: Path) -> None:
    registry = plan(["330000"], host="127.0.0.1", base_port=47000)
    timings = {"CARBON_INGEST_FOLLOW_SETTLE_MS": "1000", "CARBON_INCENTIVES_FOLLOW_INTERVAL_MS": "500"}
    followers = [spec for spec in registry.processes() if spec.service in ("ingest_svc", "incentives_svc")]
    assert {spec.service for spec in followers} == {"ingest_svc", "incentives_svc"}
    for spec in followers:
        env = child_environment(spec, registry, tmp_path, timings)
        assert {key: env.get(key) for key in timings} == timings
